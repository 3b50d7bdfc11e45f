"""Training commands: ``teachers``, ``distill``, ``adapt``, ``baseline``, ``run``.

Each takes a profile name (smoke, cpu, gpu) or an experiment YAML, then dotted overrides
(``train.lr=3e-2 prompt.tokens=20``); ``clinprompt config keys`` lists every key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from clinprompt.cli import app
from clinprompt.cli.config import CONFIG_HELP, OVERRIDES_HELP, load_or_exit


def _run(config: str, overrides: list[str] | None, work: Callable[[Any], Any]) -> Any:
    """Load and validate the config, run ``work(args)``; print errors without a traceback."""
    from clinprompt.data.registry import UnknownDatasetError
    from clinprompt.train.loop import NonFiniteLossError

    args = load_or_exit(config, overrides)
    try:
        return work(args)
    except NonFiniteLossError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=3) from err
    except (ValueError, FileNotFoundError, UnknownDatasetError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from err


@app.command()
def teachers(
    config: str = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    shard: str = typer.Option(
        None,
        help="Train only shard i of n of the source tasks, e.g. 0/4 (machines share the run directory).",
    ),
) -> None:
    """Stage 1: one soft prompt per source task, into RUN/teachers/bank (finished tasks are skipped)."""
    from clinprompt.recipes.teachers import parse_shard, train_teachers

    result = _run(config, overrides, lambda args: train_teachers(args, parse_shard(shard)))
    typer.echo(
        f"teachers bank: {result.bank} (trained {len(result.trained)}, skipped {len(result.skipped)}"
        + (f", waiting for other shards: {', '.join(result.missing)})" if result.missing else ")")
    )


@app.command()
def distill(
    config: str = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Stage 2: distil P* and each source's factors from the teachers, into RUN/distill/bank."""
    from clinprompt.recipes.distill import distill as run_distill

    result = _run(config, overrides, run_distill)
    typer.echo(f"distilled bank: {result.bank}")


@app.command()
def adapt(
    config: str = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Stage 3: adapt P* to each target (full, k-shot, zero-shot), into the serving bank RUN/bank."""
    from clinprompt.recipes.adapt import adapt as run_adapt

    result = _run(config, overrides, run_adapt)
    typer.echo(f"serving bank: {result.bank} ({len(result.artifacts)} target prompts)")


@app.command()
def baseline(
    config: str = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    method: list[str] = typer.Option(None, help="pt and/or lora [default: baseline.methods]."),
) -> None:
    """Single-task baselines on each target: prompt tuning and/or LoRA (PEFT), same loop and budgets."""
    from clinprompt.recipes.baseline import train_baselines

    bad = [m for m in method or [] if m not in ("pt", "lora")]
    if bad:
        typer.secho(
            f"error: --method {bad[0]!r}: expected pt or lora", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(code=2)
    result = _run(config, overrides, lambda args: train_baselines(args, methods=method or None))
    for ref in result.artifacts:
        typer.echo(
            f"{ref.method:5s} {ref.target} {ref.setting}: {ref.path}"
            + (f" --task {ref.task}" if ref.task else "")
        )


@app.command()
def run(
    config: str = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Teachers → distill → adapt → baselines into one run directory; finished stages are skipped."""
    from clinprompt.recipes.run import run_experiment

    result = _run(config, overrides, run_experiment)
    typer.echo(
        f"run directory: {result.run_dir} ({', '.join(f'{s} {v}' for s, v in result.stages.items())})"
    )
    typer.echo(
        f"artifacts: {result.run_dir / 'run.json'}; evaluate with `clinprompt evaluate --artifact PATH --task TASK`"
    )
