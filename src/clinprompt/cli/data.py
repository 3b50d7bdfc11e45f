"""Dataset commands: ``clinprompt data list``, ``data validate`` and ``data stats``."""

from __future__ import annotations

from pathlib import Path

import typer

from clinprompt.cli import app

data_app = typer.Typer(help="Datasets: list, validate, stats.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def split_labels(labels: str | None) -> tuple[str, ...] | None:
    """``"A,B, C"`` → ``("A", "B", "C")``; None stays None (use the dataset's own labels)."""
    if labels is None:
        return None
    return tuple(x.strip() for x in labels.split(",") if x.strip())


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@data_app.command("validate")
def validate(
    target: str = typer.Argument(
        ...,
        help="A JSONL file of records, a dataset YAML config (every split it names), or a registered dataset name.",
    ),
    task_type: str = typer.Option(
        None,
        "--task-type",
        help="ner | re | qa | nli | sum. Required for a bare JSONL file; a config or dataset names its own.",
    ),
    labels: str = typer.Option(
        None,
        "--labels",
        help="Comma-separated label set to enforce: entity types (ner), relation types (re), classes (nli). Default: the config's labels; none for a bare file.",
    ),
    data_root: Path = typer.Option(
        None, "--data-root", help="Folder holding the datasets (for a registered dataset name)."
    ),
) -> None:
    """Check records against the record format; print every problem as FILE:LINE: field 'x': expected ...

    Exit code 0 with a one-line summary when clean, 1 when any record breaks the format, 2 on usage errors.
    """
    from dataclasses import replace

    from clinprompt.data.registry import (
        DataRootError,
        UnknownDatasetError,
        is_config_path,
        load_splits,
        resolve_dataset,
    )
    from clinprompt.data.spec import DatasetSpec
    from clinprompt.tasks.base import get_task_type
    from clinprompt.tasks.records import find_issues, read_jsonl

    wanted_labels = split_labels(labels)
    if task_type is not None:
        try:
            get_task_type(task_type)
        except KeyError as e:
            raise _fail(str(e.args[0])) from None
    path = Path(target)
    splits: dict[
        str, tuple[str, list[tuple[int, dict]]]
    ] = {}  # split -> (source, numbered records)
    issues = []
    if path.is_file() and not is_config_path(path):
        if task_type is None:
            raise _fail(
                f"{target} is a bare JSONL file: pass --task-type (ner, re, qa, nli, sum), and --labels to enforce a label set"
            )
        spec = DatasetSpec(name=path.stem, task_type=task_type)
        rows, issues = read_jsonl(path)
        splits[path.stem] = (str(path), rows)
    else:
        try:  # a registered name or a dataset config, checked but not registered
            spec = resolve_dataset(target, register_it=False)
            loaded = None if spec.paths else load_splits(spec, data_root)
        except UnknownDatasetError as e:
            raise _fail(f"{target} is neither a file nor a registered dataset ({e})") from None
        except (DataRootError, ValueError, OSError) as e:  # incl. RecordError, BRAT format errors
            typer.echo(str(e))
            raise typer.Exit(1) from None
        for split, file in spec.paths.items():  # JSONL splits: problems by file and line
            rows, found = read_jsonl(file)
            issues += found
            splits[split] = (file, rows)
        for split, records in (loaded or {}).items():
            splits[split] = (f"{spec.name}/{split}", list(enumerate(records, start=1)))
    if task_type is not None and task_type != spec.task_type:
        raise _fail(
            f"--task-type {task_type} disagrees with {target}, whose task type is {spec.task_type}"
        )
    if wanted_labels is not None:
        spec = replace(spec, labels=wanted_labels)
    for source, rows in splits.values():
        issues += find_issues([r for _, r in rows], spec, source, [n for n, _ in rows])
    if issues:
        for issue in sorted(issues, key=lambda i: (i.path, i.line)):
            typer.echo(str(issue))
        typer.echo(f"{len(issues)} problem(s) in {target}", err=True)
        raise typer.Exit(1)
    counts = ", ".join(f"{split} {len(rows)}" for split, (_, rows) in splits.items())
    typer.echo(f"ok: {spec.name} ({spec.task_type}) records per split: {counts}")


@data_app.command("stats")
def stats(
    suite: str = typer.Argument(
        ...,
        help="Built-in suite (open-clinical, synthetic), a suite YAML file, or one dataset: a registered name or a dataset config (.yaml).",
    ),
    data_root: Path = typer.Option(
        None,
        "--data-root",
        help="Folder holding the datasets (default: $CLINPROMPT_DATA_ROOT, else ../shared/data).",
    ),
    backbone: str = typer.Option(
        "smollm2-135m",
        help="Backbone whose tokenizer counts tokens (built-in name, HF directory or hub id).",
    ),
    max_examples: int = typer.Option(
        1000,
        help="Examples tokenized per split (a seeded sample; split sizes stay exact); 0 = all.",
    ),
    no_tokens: bool = typer.Option(
        False, "--no-tokens", help="Skip token lengths (no tokenizer needed)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Per task of SUITE (or of one dataset): role, task type, split sizes, token lengths of prompt and target."""
    import json

    from clinprompt.data.registry import (
        DataRootError,
        UnknownDatasetError,
        get_dataset,
        needs_data_root,
        resolve_data_root,
    )
    from clinprompt.data.stats import stats_suite, suite_stats
    from clinprompt.data.suite import SuiteError

    try:  # every dataset config is resolved (or its problems reported) before any tokenizer loads
        loaded = stats_suite(suite)
        if any(needs_data_root(get_dataset(t)) for t in loaded.tasks):
            resolve_data_root(data_root)  # fail once, clearly, rather than once per task
    except (
        SuiteError,
        DataRootError,
        UnknownDatasetError,
        ValueError,
    ) as e:  # ValueError: RecordError
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    rows = suite_stats(
        loaded, data_root, backbone=None if no_tokens else backbone, max_examples=max_examples
    )
    if as_json:
        payload = {
            "suite": loaded.name,
            "backbone": None if no_tokens else backbone,
            "max_examples": max_examples,
            "tasks": [r.to_dict() for r in rows],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    _print_table(loaded.name, backbone, no_tokens, rows)


def _print_table(name: str, backbone: str, no_tokens: bool, rows: list) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"Suite {name}" + (
        "" if no_tokens else f" — token lengths with the {backbone} tokenizer (mean / p95 / max)"
    )
    table = Table(title=title)
    for col in (
        "task",
        "role",
        "type",
        "train",
        "dev",
        "test",
        "prompt tokens",
        "target tokens",
        "note",
    ):
        table.add_column(col, justify="right" if col in ("train", "dev", "test") else "left")
    footnotes: list[str] = []  # long notes (e.g. one reason shared by every task) print once below

    def ref(note: str) -> str:
        if note not in footnotes:
            footnotes.append(note)
        return f"[{footnotes.index(note) + 1}]"

    def fmt(s) -> str:
        return f"{s.mean:.0f} / {s.p95} / {s.max}" if s else "-"

    for r in rows:
        other = {k: v for k, v in r.splits.items() if k not in ("train", "dev", "test")}
        notes = [
            "SYNTHETIC" if r.synthetic else "",
            f"other splits: {other}" if other else "",
            ref(r.note) if r.note else "",
        ]
        table.add_row(
            r.task,
            r.role,
            r.task_type,
            *(f"{r.splits[s]:,}" if s in r.splits else "-" for s in ("train", "dev", "test")),
            fmt(r.prompt_tokens),
            fmt(r.target_tokens),
            " ".join(n for n in notes if n),
        )
    console = Console()
    console.print(table)
    for i, note in enumerate(footnotes, 1):
        console.print(f"[{i}] {note}", markup=False, highlight=False)


@data_app.command("list")
def list_(
    task_type: str = typer.Option(
        None, "--task-type", help="Only datasets of this task type: ner | re | qa | nli | sum."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Registered datasets: name, task type, number of labels, SYNTHETIC flag and description."""
    import json

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from clinprompt.data.registry import list_datasets
    from clinprompt.tasks.base import get_task_type

    if task_type is not None:
        try:
            get_task_type(task_type)
        except KeyError as e:
            raise _fail(str(e.args[0])) from None
    specs = list_datasets(task_type=task_type)
    rows = [
        {
            "name": s.name,
            "task_type": s.task_type,
            "labels": len(s.labels),
            "synthetic": s.synthetic,
            "description": s.description,
        }
        for s in specs
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    which = f"{task_type} datasets" if task_type else "datasets"
    table = Table(title=f"{len(rows)} registered {which}")
    for col in ("name", "type", "labels", "synthetic", "description"):
        table.add_column(col, justify="right" if col == "labels" else "left")
    for r in rows:
        table.add_row(
            r["name"],
            r["task_type"],
            str(r["labels"]),
            "SYNTHETIC" if r["synthetic"] else "",
            Text(r["description"]),  # plain text: a description may hold [brackets]
        )
    Console().print(table)
