"""Training commands: ``teachers``, ``distill``, ``adapt``, ``baseline``, ``run``.

Each takes a profile name (smoke, cpu, gpu, demo) or an experiment YAML, then dotted overrides
(``train.lr=3e-2 prompt.tokens=20``); ``clinprompt config keys`` lists every key.

``adapt --bank BANK --dataset my.yaml`` adapts an existing bank (``builtin``: the one shipped with
the package) to one new target, and ``baseline --dataset my.yaml`` trains PT and LoRA on the same
records and budgets, both into the target's run directory (``--run-dir``, default
``runs/<dataset name>``); each prints the commands to run next.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from clinprompt.cli import app
from clinprompt.cli.config import CONFIG_HELP, OVERRIDES_HELP, load_or_exit

DATASET_HELP = (
    "One target: a dataset config (.yaml: JSONL splits or format: brat) or a registered name; "
    "trained into its own run directory."
)
RUN_DIR_HELP = "The target's run directory [default: runs/<dataset name>]."


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


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _command(*parts: Any) -> str:
    """A command line, each part shell-quoted."""
    return " ".join(shlex.quote(str(p)) for p in parts if p is not None)


@app.command()
def adapt(
    config: str = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    bank: str = typer.Option(
        None,
        help="Adapt this bank (a directory, or builtin: the one shipped with the package) to "
        "--dataset, without teachers or distillation.",
    ),
    dataset: str = typer.Option(None, help=DATASET_HELP + " With --bank."),
    out: Path = typer.Option(
        None,
        help="With --bank: add the target to this new bank (a copy of BANK; BANK is left "
        "untouched) [default: into BANK; the built-in bank needs --out].",
    ),
    run_dir: Path = typer.Option(None, help=RUN_DIR_HELP + " With --bank."),
) -> None:
    """Stage 3: adapt P* to each target (full, k-shot, zero-shot), into the serving bank RUN/bank.

    With --bank BANK --dataset my.yaml: adapt an existing bank's P* and source factors to that
    one target, as the profile's adapt.* says (full data, adapt.shots, zero-shot from the
    closest source), and add it to BANK (or to --out NEWBANK).
    """
    if bank is None and dataset is None:
        if out is not None or run_dir is not None:
            raise _fail("--out and --run-dir go with --bank BANK --dataset DATASET")
        from clinprompt.recipes.adapt import adapt as run_adapt

        result = _run(config, overrides, run_adapt)
        typer.echo(f"serving bank: {result.bank} ({len(result.artifacts)} target prompts)")
        return
    if bank is None or dataset is None:
        raise _fail(
            "--bank and --dataset go together: clinprompt adapt PROFILE --bank BANK --dataset my.yaml"
        )
    from clinprompt.eval.provenance import command_line
    from clinprompt.recipes.target_run import adapt_bank

    done = _run(
        config,
        overrides,
        lambda args: adapt_bank(
            args, bank, dataset, out, run_dir, say=typer.echo, command=command_line()
        ),
    )
    _print_adapted(done)
    run, cfg = done.run_dir, [config, *(overrides or [])]
    typer.echo("next:")
    for line, why in (
        (
            _command("clinprompt", "baseline", *cfg, "--dataset", dataset, "--run-dir", run),
            "PT and LoRA on the same records and budgets",
        ),
        (
            _command("clinprompt", "evaluate", "--run-dir", run, "--all"),
            "every artifact of the run, the floor and the zero-shot backbone",
        ),
        (_command("clinprompt", "report", run), "the table: floor, zero-shot, PT, LoRA, MPT"),
        (_command("clinprompt", "serve", "--bank", done.bank), "every task of the bank over HTTP"),
    ):
        typer.echo(f"  {line}\n      # {why}")
    typer.echo("one evaluation at a time:")
    for ref in done.artifacts:
        typer.echo(
            "  "
            + _command(
                "clinprompt",
                "evaluate",
                "--dataset",
                dataset,
                "--artifact",
                done.bank,
                "--task",
                ref.task,
                "--setting",
                ref.setting,
                "--run-dir",
                run,
            )
        )


def _print_adapted(done: Any) -> None:
    """The target's bank entries: name, type, how stored, parameters, bytes, how trained."""
    from clinprompt.params import prompt_parameter_count
    from clinprompt.prompts.bank import PromptBank

    bank = PromptBank.load(done.bank)
    p, d, r = bank.prompt_tokens, bank.dim, bank.rank
    typer.echo(f"bank {done.bank}: {len(bank.tasks)} tasks ({len(done.sources)} sources) on P*")
    typer.echo(
        f"  {'task':<28} {'type':<5} {'stored as':<20} {'parameters':>11} {'on disk':>10}  trained"
    )
    for ref in done.artifacts:
        e = bank.entry(ref.task)
        stored = f"{e.kind}" + (" + own P*" if e.own_shared else "")
        params = prompt_parameter_count(e.kind, p, d, r, own_shared=e.own_shared)
        meta, train = e.meta or {}, ref.train
        if ref.setting == "k0":
            how = f"zero-shot: {meta.get('zero_shot', 'untrained')}"
        else:
            how = f"{train.get('train_examples')} examples, {train.get('train_steps')} steps" + (
                f", best dev loss {meta['best_dev_loss']:.3f}"
                if isinstance(meta.get("best_dev_loss"), float)
                else ""
            )
        kept = " (already in the bank: kept)" if ref.task in done.kept else ""
        typer.echo(
            f"  {ref.task:<28} {e.task_type:<5} {stored:<20} {params:>11,} "
            f"{bank.task_bytes(ref.task) / 1024:>6.1f} KiB  {how}{kept}"
        )
    typer.echo(f"run directory: {done.run_dir} ({done.wall_s:.0f} s)")


@app.command()
def baseline(
    config: str = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    method: list[str] = typer.Option(None, help="pt and/or lora [default: baseline.methods]."),
    dataset: str = typer.Option(None, help=DATASET_HELP),
    run_dir: Path = typer.Option(None, help=RUN_DIR_HELP + " With --dataset."),
) -> None:
    """Single-task baselines on each target: prompt tuning and/or LoRA (PEFT), same loop and budgets.

    With --dataset my.yaml: on that one target, in its run directory, with the plan
    `clinprompt adapt --bank` makes there (same records, budgets, seeds, rate search).
    """
    from clinprompt.eval.provenance import command_line
    from clinprompt.recipes.baseline import train_baselines
    from clinprompt.recipes.target_run import train_baselines_on

    bad = [m for m in method or [] if m not in ("pt", "lora")]
    if bad:
        raise _fail(f"--method {bad[0]!r}: expected pt or lora")
    if dataset is None:
        if run_dir is not None:
            raise _fail("--run-dir goes with --dataset")
        result = _run(config, overrides, lambda args: train_baselines(args, methods=method or None))
    else:
        result = _run(
            config,
            overrides,
            lambda args: train_baselines_on(
                args, dataset, method or None, run_dir, command=command_line()
            ),
        )
    for ref in result.artifacts:
        typer.echo(
            f"{ref.method:5s} {ref.target} {ref.setting}: {ref.path}"
            + (f" --task {ref.task}" if ref.task else "")
        )
    if dataset is None:
        return
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo("next:")
    typer.echo("  " + _command("clinprompt", "evaluate", "--run-dir", result.run_dir, "--all"))
    typer.echo("  " + _command("clinprompt", "report", result.run_dir))


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
