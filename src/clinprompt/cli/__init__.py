"""The ``clinprompt`` command line: subcommands → entry points. Parsing only; work lives in recipes.

Each command (or command group) is a module named after it (``cli/<command>.py``) that registers
itself on ``app``; :data:`COMMAND_MODULES` lists them in the order ``clinprompt --help`` shows.
Imports of heavy libraries (torch, transformers) happen inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="clinprompt",
    help="One frozen LLM, many clinical NLP tasks through tiny learned soft prompts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """One frozen LLM, many clinical NLP tasks through tiny learned soft prompts."""


# Pipeline order: data, training, evaluation and reporting, then tools, banks and serving.
COMMAND_MODULES = (
    "data",
    "config",
    "train",
    "evaluate",
    "report",
    "demo",
    "score",
    "params",
    "bank",
    "serve",
)


def _register() -> None:
    # Every command module registers its commands on import.
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"clinprompt.cli.{name}")


def main() -> None:
    """Entry point of the ``clinprompt`` console script."""
    _register()
    app()


__all__ = ["COMMAND_MODULES", "app", "main"]
