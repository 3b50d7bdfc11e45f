"""The ``clinprompt`` app with every command registered, and a runner that invokes it."""

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
