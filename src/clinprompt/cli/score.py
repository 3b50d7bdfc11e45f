"""``clinprompt score``: metrics of a prediction file against a gold file (records matched by id)."""

from __future__ import annotations

from pathlib import Path

import typer

from clinprompt.cli import app


@app.command()
def score(
    task_type: str = typer.Option(..., "--task-type", help="ner | re | qa | nli | sum."),
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
        "short",
        "--answer-style",
        help="qa without options: short (exact match, token F1) or long (also ROUGE).",
    ),
    joint: bool = typer.Option(
        False, "--joint", help="re: entities are predicted too (spans matched against the gold)."
    ),
) -> None:
    """Print the task type's metrics as JSON (plus n, missing and unparseable counts).

    A gold record without a prediction counts as wrong; a prediction whose id is not in the gold
    file is an error; a prediction with ill-formed output fields counts as unparseable (wrong).
    """
    import json

    from clinprompt.cli.data import split_labels
    from clinprompt.data.spec import DatasetSpec
    from clinprompt.tasks.base import get_task_type
    from clinprompt.tasks.records import Issue, RecordError, read_jsonl, read_records

    try:
        task = get_task_type(task_type)
    except KeyError as e:
        typer.echo(f"error: {e.args[0]}", err=True)
        raise typer.Exit(2) from None
    if answer_style not in ("short", "long"):
        typer.echo(f"error: --answer-style must be short or long, got {answer_style!r}", err=True)
        raise typer.Exit(2)
    spec = DatasetSpec(
        name=gold.stem,
        task_type=task_type,
        labels=split_labels(labels) or (),
        answer_style=answer_style,
        joint=joint,
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
