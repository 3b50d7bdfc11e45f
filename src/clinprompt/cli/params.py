"""``clinprompt params``: trainable parameters of each method and their share of the backbone."""

from __future__ import annotations

import typer

from clinprompt.cli import app


@app.command()
def params(
    backbone: str = typer.Option(
        "smollm2-135m", help="Built-in name, HF model directory, config.json path or hub id."
    ),
    prompt_tokens: int = typer.Option(
        None, help="Prompt length P [default: 100, the paper's; the cpu profile uses 50]."
    ),
    rank: int = typer.Option(1, help="Rank R of the per-task factors."),
    source_tasks: int = typer.Option(16, help="Number of source tasks K in the distilled bank."),
    lora_r: int = typer.Option(8, help="LoRA rank for the baseline (on q_proj and v_proj)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Trainable parameters of each method and their share of the backbone (from the config alone)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from clinprompt.backbone import load_backbone_config
    from clinprompt.params import parameter_table

    config = load_backbone_config(backbone)
    rows, info = parameter_table(
        config, prompt_tokens=prompt_tokens, rank=rank, num_source_tasks=source_tasks, lora_r=lora_r
    )
    if as_json:
        typer.echo(
            json.dumps(
                {"backbone": backbone, **info, "methods": [r.to_dict() for r in rows]}, indent=2
            )
        )
        return
    table = Table(
        title=f"Trainable parameters on {backbone} ({info['backbone_parameters']:,} backbone parameters, P={info['prompt_tokens']}, R={rank})"
    )
    for col in ("method", "trainable", "% of backbone", "note"):
        table.add_column(col, justify="right" if col in ("trainable", "% of backbone") else "left")
    for r in rows:
        table.add_row(r.method, f"{r.trainable:,}", f"{r.percent:.4f}%", r.note)
    Console().print(table)
