"""``clinprompt evaluate``: one artifact (or the bare backbone) on one dataset split, or a whole run.

Its options are the fields of :class:`~clinprompt.eval.args.EvalArgs` (declared there once),
plus ``--floor``, which picks the floor recipe instead of a model, and ``--all``, which
evaluates every artifact a run directory records (``--run-dir RUN``), each target's floor and
the zero-shot backbone. ``--dataset`` is required except with ``--all`` (the run names its
targets); ``--artifact builtin`` is the bank shipped with the package.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer

from clinprompt.cli import app
from clinprompt.config.cli_options import options_from
from clinprompt.eval.args import EvalArgs

# With --all the options a run decides (what, where, how trained) are refused.
_NOT_WITH_ALL = ("dataset", "artifact", "task", "method", "out")


def _dataset_optional(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--dataset`` as an option that may be left out (``--all`` needs none); the command
    says when it is missing."""
    signature = inspect.signature(command)
    params = []
    for p in signature.parameters.values():
        if p.name == "dataset":
            p = p.replace(default=typer.Option(None, "--dataset", help=p.default.help))
        params.append(p)
    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return command


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@app.command()
@_dataset_optional
@options_from(EvalArgs)
def evaluate(
    args: EvalArgs,
    floor: bool = typer.Option(
        False, "--floor", help="Score the dataset's trivial floor instead of a model."
    ),
    every: bool = typer.Option(
        False,
        "--all",
        help="Evaluate every artifact the run directory (--run-dir) records, each target's "
        "floor and the zero-shot backbone (resumable); then `clinprompt report RUN`.",
    ),
) -> None:
    """Score an artifact (or the bare backbone) on a dataset split; write predictions and metrics."""
    import dataclasses
    import json

    from clinprompt.recipes.evaluate import EvalError, evaluate_floor
    from clinprompt.recipes.evaluate import evaluate as run_evaluate

    if every:
        _evaluate_all(args, floor)
        return
    if args.dataset is None:
        raise _fail("--dataset is required (or --all with --run-dir RUN)")
    try:
        if args.artifact is not None:
            from clinprompt.prompts.bank_location import resolve_bank

            args = dataclasses.replace(args, artifact=str(resolve_bank(args.artifact)))
        result = evaluate_floor(args) if floor else run_evaluate(args)
    except (EvalError, KeyError, FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from err
    shown = {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)}
    typer.echo(
        f"{args.dataset}/{args.split}: n={result.n}, unparseable={result.unparseable}, {result.primary_metric}={result.primary:.4f}"
    )
    typer.echo(json.dumps(shown))
    if result.out_dir is not None:
        typer.echo(f"written: {result.out_dir}")


def _evaluate_all(args: EvalArgs, floor: bool) -> None:
    """``--all``: every recorded artifact of ``--run-dir``, floors and the zero-shot backbone."""
    from clinprompt.recipes.evaluate import EvalError, evaluate_recorded_run

    given = [f"--{n.replace('_', '-')}" for n in _NOT_WITH_ALL if getattr(args, n) is not None]
    given += ["--floor"] if floor else []
    if args.setting != "full":
        given.append("--setting")
    if given:
        raise _fail(f"--all evaluates what the run records; {', '.join(given)} do not go with it")
    if args.run_dir is None:
        raise _fail("--all needs --run-dir RUN")

    def on_start(i: int, total: int, label: str) -> None:
        typer.echo(f"[{i + 1}/{total}] {label}")

    try:
        results = evaluate_recorded_run(
            args.run_dir,
            split=args.split,
            limit=args.limit,
            backbone_name=args.backbone,
            device=args.device,
            dtype=None if args.dtype == "auto" else args.dtype,
            on_start=on_start,
        )
    except (EvalError, KeyError, FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from err
    done = [r for r in results if r is not None]
    for r in done:
        s = r.summary
        typer.echo(
            f"{s['method']:<8} {s['target']} {s['setting']}: n={r.n}, "
            f"{r.primary_metric}={r.primary:.4f}"
        )
    typer.echo(
        f"evaluated {len(done)}, already on disk {len(results) - len(done)}; "
        f"the table: clinprompt report {args.run_dir}"
    )
