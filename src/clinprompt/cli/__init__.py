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
    # Import order is the order of `clinprompt --help`.
    from clinprompt.cli import core  # noqa: F401

    for area in ("data", "train", "evaluate", "bank", "serve"):
        try:
            __import__(f"clinprompt.cli.{area}")
        except ModuleNotFoundError as err:  # an area not built yet
            if err.name != f"clinprompt.cli.{area}":
                raise


def main() -> None:
    """Entry point of the ``clinprompt`` console script."""
    _register()
    app()


__all__ = ["app", "main"]
