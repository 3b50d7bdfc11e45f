"""``clinprompt evaluate``: one artifact (or the bare backbone) on one dataset split."""

from __future__ import annotations

import typer

from clinprompt.cli import app


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def evaluate(
    dataset: str = typer.Option(
        ..., "--dataset", help="Registered dataset to evaluate on (`clinprompt data list`)."
    ),
    artifact: str = typer.Option(
        None,
        help="Bank directory, PEFT adapter directory (LoRA or prompt tuning) or .safetensors prompt; omit for the bare backbone with the instruction only.",
    ),
    task: str = typer.Option(
        None, help="Task of the bank [default: the dataset's name, or the bank's only task]."
    ),
    split: str = typer.Option("test", help="Split to evaluate."),
    limit: int = typer.Option(
        None, help="At most N examples (a seeded sample, kept in file order)."
    ),
    data_root: str = typer.Option(
        None,
        help="Folder of the public datasets [default: $CLINPROMPT_DATA_ROOT or ../shared/data].",
    ),
    backbone: str = typer.Option(
        None, help="Backbone [default: the artifact's, else smollm2-135m]."
    ),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1 [default: CUDA when available]."),
    batch_size: int = typer.Option(32, help="Examples per forward pass."),
    max_input_tokens: int = typer.Option(
        256, help="Input tokens kept per example (as in training)."
    ),
    max_new_tokens: int = typer.Option(
        None, help="Generation budget [default: per task type, 8-96]."
    ),
    generate: bool = typer.Option(
        False,
        "--generate",
        help="Generate even for classification tasks instead of scoring every option in one forward pass.",
    ),
    seed: int = typer.Option(0, help="Seed of the --limit sample."),
    method: str = typer.Option(
        None, help="Report column: zeroshot, pt, lora, mpt [default: from the artifact]."
    ),
    setting: str = typer.Option(
        "full", help="Training setting of the artifact: full, k16, k64, k0."
    ),
    run_dir: str = typer.Option(
        None,
        help="Write into RUN/eval/<method>/<dataset>/<setting>/ (read by `clinprompt report`).",
    ),
    out: str = typer.Option(
        None,
        help="Write predictions.jsonl, metrics.json and config.json into this directory instead.",
    ),
    floor: bool = typer.Option(
        False, "--floor", help="Score the dataset's trivial floor instead of a model."
    ),
) -> None:
    """Score an artifact (or the bare backbone) on a dataset split; write predictions and metrics."""
    import json

    from clinprompt.recipes.evaluate import EvalArgs, EvalError, evaluate_floor
    from clinprompt.recipes.evaluate import evaluate as run_evaluate

    args = EvalArgs(
        dataset=dataset,
        artifact=artifact,
        task=task,
        split=split,
        limit=limit,
        data_root=data_root,
        backbone=backbone,
        device=device,
        batch_size=batch_size,
        max_input_tokens=max_input_tokens,
        max_new_tokens=max_new_tokens,
        generate=generate,
        seed=seed,
        method=method,
        setting=setting,
        run_dir=run_dir,
        out=out,
    )
    try:
        result = evaluate_floor(args) if floor else run_evaluate(args)
    except (EvalError, KeyError, FileNotFoundError, ValueError) as err:
        _fail(err)
        return
    shown = {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)}
    typer.echo(
        f"{dataset}/{split}: n={result.n}, unparseable={result.unparseable}, {result.primary_metric}={result.primary:.4f}"
    )
    typer.echo(json.dumps(shown))
    if result.out_dir is not None:
        typer.echo(f"written: {result.out_dir}")
