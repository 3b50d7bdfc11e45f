"""Suite commands: ``clinprompt data stats SUITE`` (sizes and token lengths of every task)."""

from __future__ import annotations

from pathlib import Path

import typer

from clinprompt.cli.data import data_app


@data_app.command("stats")
def stats(
    suite: str = typer.Argument(
        ..., help="Built-in suite (open-clinical, synthetic) or a suite YAML file."
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
    """Per task of SUITE: role, task type, split sizes, token lengths of prompt and target."""
    import json

    from clinprompt.data.registry import DataRootError, resolve_data_root
    from clinprompt.data.stats import suite_stats
    from clinprompt.data.suite import SuiteError, load_suite

    try:
        loaded = load_suite(suite)
        if not all(_is_synthetic(t) for t in loaded.tasks):
            resolve_data_root(data_root)  # fail once, clearly, rather than once per task
    except (SuiteError, DataRootError) as e:
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


def _is_synthetic(task: str) -> bool:
    from clinprompt.data.registry import get_dataset

    return get_dataset(task).synthetic


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
