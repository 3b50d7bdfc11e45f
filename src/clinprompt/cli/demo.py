"""``clinprompt demo``: the whole pipeline on the built-in backbone and the SYNTHETIC suite."""

from __future__ import annotations

from pathlib import Path

import typer

from clinprompt.cli import app


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def demo(
    out: Path = typer.Option(
        Path("runs/demo"), help="Run folder (re-running skips finished stages)."
    ),
    backbone: str = typer.Option(
        "smollm2-135m",
        help="Backbone: smollm2-135m (built in), tiny-llama (seconds, random weights) or an HF model.",
    ),
    config: str = typer.Option(None, help="Config YAML [default: the packaged demo profile]."),
    overrides: list[str] = typer.Argument(
        None, help="Dotted config overrides, e.g. train.steps=20."
    ),
) -> None:
    """The whole method on the built-in SYNTHETIC suite: teachers → distill → adapt → PT and LoRA → evaluate → report."""
    from clinprompt.recipes.demo import run_demo

    try:
        run_demo(out, backbone=backbone, config=config, overrides=list(overrides or []))
    except (FileNotFoundError, ValueError) as err:
        _fail(err)
