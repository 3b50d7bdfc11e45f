"""``clinprompt evaluate``: one artifact (or the bare backbone) on one dataset split.

Its options are the fields of :class:`~clinprompt.eval.args.EvalArgs` (declared there once),
plus ``--floor``, which picks the floor recipe instead of a model.
"""

from __future__ import annotations

import typer

from clinprompt.cli import app
from clinprompt.config.cli_options import options_from
from clinprompt.eval.args import EvalArgs


@app.command()
@options_from(EvalArgs)
def evaluate(
    args: EvalArgs,
    floor: bool = typer.Option(
        False, "--floor", help="Score the dataset's trivial floor instead of a model."
    ),
) -> None:
    """Score an artifact (or the bare backbone) on a dataset split; write predictions and metrics."""
    import json

    from clinprompt.recipes.evaluate import EvalError, evaluate_floor
    from clinprompt.recipes.evaluate import evaluate as run_evaluate

    try:
        result = evaluate_floor(args) if floor else run_evaluate(args)
    except (EvalError, KeyError, FileNotFoundError, ValueError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from err
    shown = {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)}
    typer.echo(
        f"{args.dataset}/{args.split}: n={result.n}, unparseable={result.unparseable}, {result.primary_metric}={result.primary:.4f}"
    )
    typer.echo(json.dumps(shown))
    if result.out_dir is not None:
        typer.echo(f"written: {result.out_dir}")
