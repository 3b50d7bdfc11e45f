"""``clinprompt report``: the paper's table, bootstrap intervals and plots from run directories."""

from __future__ import annotations

from pathlib import Path

import typer

from clinprompt.cli import app


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(
        ...,
        help="Run directories (later ones override earlier evaluations of the same method/target/setting/seed).",
    ),
    out: Path = typer.Option(None, help="Output folder [default: FIRST_RUN/report]."),
    resamples: int = typer.Option(
        1000,
        help="Paired-bootstrap resamples (examples and training seeds) for MPT−PT and MPT−LoRA.",
    ),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    plots: bool = typer.Option(True, help="Write the PNG plots."),
) -> None:
    """The paper's table (Markdown + CSV), bootstrap intervals and plots from run directories.

    Trained methods evaluated with several seeds show mean ± sd; the learning rates chosen on
    dev, the examples and steps of each setting, and the loss curves of each training stage
    (loss-<stage>.png) are part of the report.
    """
    from clinprompt.recipes.report import report_runs

    try:
        _, paths = report_runs(list(run_dirs), out, resamples=resamples, seed=seed, plots=plots)
    except (FileNotFoundError, ValueError) as err:
        _fail(err)
        return
    typer.echo(paths["markdown"].read_text(encoding="utf-8"))  # as written, figure links included
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
