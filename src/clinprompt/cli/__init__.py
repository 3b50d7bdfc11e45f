"""The ``clinprompt`` command line: subcommands → entry points. Parsing only; work lives in recipes.

Each area registers its commands in its own module (``cli/<area>.py``); imports of heavy
libraries (torch, transformers) happen inside the commands so ``clinprompt --help`` is fast.
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


def _register() -> None:
    # Every module of this package registers its commands on import.
    import importlib
    import pkgutil

    import clinprompt.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"clinprompt.cli.{info.name}")


def main() -> None:
    """Entry point of the ``clinprompt`` console script."""
    _register()
    app()


__all__ = ["app", "main"]
