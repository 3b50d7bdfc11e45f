"""The ``clinprompt`` app with every command registered: a runner that invokes it, and the click
options a command declares."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result


@pytest.fixture(scope="session")
def cli():
    """``cli(*args, env=None)`` → click's Result of ``clinprompt ARGS`` (every command registered)."""
    from clinprompt.cli import _register, app

    _register()
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), env=env)

    return invoke


@pytest.fixture(scope="session")
def command_options():
    """``command_options("evaluate")`` → {parameter name: click option} of that command."""
    import typer.main

    from clinprompt.cli import _register, app

    _register()
    group = typer.main.get_command(app)

    def options(name: str) -> dict:
        return {p.name: p for p in group.commands[name].params}

    return options
