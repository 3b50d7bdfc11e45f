"""``clinprompt score``: metrics of a prediction file against a gold file (records matched by id)."""

from __future__ import annotations

from pathlib import Path

import typer

from clinprompt.cli import app


@app.command()
def score(
    task_type: str = typer.Option(
        None, "--task-type", help="ner | re | qa | nli | sum. Required without --dataset."
    ),
    dataset: str = typer.Option(
        None,
        "--dataset",
        help="Registered dataset name or dataset config (.yaml) whose task type, labels, answer style and joint setting to score with (the options below override them).",
    ),
    gold: Path = typer.Option(
        ..., "--gold", help="Gold JSONL records (validated against the record format)."
    ),
    pred: Path = typer.Option(
        ..., "--pred", help="Predicted JSONL records of the same type, matched to the gold by id."
    ),
    labels: str = typer.Option(
        None,
        "--labels",
        help="Comma-separated label set: entity types (ner), relation types (re), classes (nli).",
    ),
    answer_style: str = typer.Option(
        None,
        "--answer-style",
        help="qa without options: short (exact match, token F1) or long (also ROUGE). [default: the dataset's, else short]",
    ),
    joint: bool = typer.Option(
        None,
        "--joint/--no-joint",
        help="re: entities are predicted too (spans matched against the gold). [default: the dataset's, else no]",
    ),
) -> None:
    """Print the task type's metrics as JSON (plus n, missing and unparseable counts).

    A gold record without a prediction counts as wrong; a prediction whose id is not in the gold
    file is an error; a prediction with ill-formed output fields counts as unparseable (wrong).
    """
    import json
    from dataclasses import replace

    from clinprompt.cli.data import split_labels
    from clinprompt.data.registry import UnknownDatasetError, resolve_dataset
    from clinprompt.data.spec import DatasetSpec
    from clinprompt.tasks.base import get_task_type
    from clinprompt.tasks.records import Issue, RecordError, read_jsonl, read_records

    def fail(message: str, code: int = 2) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(code)

    base = None
    if dataset is not None:
        try:
            base = resolve_dataset(dataset)
        except UnknownDatasetError as e:
            raise fail(str(e)) from None
        except RecordError as e:  # the config's problems, as file:line: field ...
            typer.echo(str(e))
            raise typer.Exit(1) from None
        if task_type is not None and task_type != base.task_type:
            raise fail(
                f"--task-type {task_type} disagrees with --dataset {dataset}, whose task type is {base.task_type}"
            )
    task_type = task_type or (base.task_type if base else None)
    if task_type is None:
        raise fail("pass --task-type (ner, re, qa, nli, sum) or --dataset (a name or config)")
    try:
        task = get_task_type(task_type)
    except KeyError as e:
        raise fail(str(e.args[0])) from None
    answer_style = answer_style or (base.answer_style if base else "short")
    if answer_style not in ("short", "long"):
        raise fail(f"--answer-style must be short or long, got {answer_style!r}")
    start = base.task_spec() if base else DatasetSpec(name=gold.stem, task_type=task_type)
    spec = replace(
        start,
        labels=split_labels(labels) or start.labels,
        answer_style=answer_style,
        joint=start.joint if joint is None else joint,
    )
    try:
        golds = read_records(gold, spec)
    except RecordError as e:
        typer.echo(str(e))
        raise typer.Exit(1) from None
    rows, issues = read_jsonl(pred)
    gold_ids = {g["id"] for g in golds}
    by_id: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    for line, record in rows:
        rid = record.get("id")
        if not isinstance(rid, str):
            issues.append(
                Issue(
                    str(pred),
                    line,
                    "id",
                    f"expected a string id matching a gold record, got {rid!r}",
                )
            )
        elif rid not in gold_ids:
            issues.append(
                Issue(
                    str(pred),
                    line,
                    "id",
                    f"expected an id of a record in {gold}; {rid!r} is not one",
                )
            )
        elif rid in by_id:
            issues.append(
                Issue(
                    str(pred),
                    line,
                    "id",
                    f"expected one prediction per id; {rid!r} is already on line {first_line[rid]}",
                )
            )
        else:
            by_id[rid], first_line[rid] = record, line
    if issues:
        for issue in issues:
            typer.echo(str(issue))
        raise typer.Exit(1)
    metrics = task.score(golds, [by_id.get(g["id"]) for g in golds], spec)
    out = {"task_type": task_type, "primary_metric": task.primary_metric(spec), **metrics}
    typer.echo(json.dumps(out, indent=2))
