"""``clinprompt demo``: the whole method on the built-in SYNTHETIC suite, in one run folder.

Reads top to bottom: config (the packaged ``demo`` profile) → backbone → teachers → distill →
adapt → PT and LoRA baselines → evaluate every artifact, each target's floor and the zero-shot
backbone → report (table, intervals, plots) → print the table and the paths. Each stage prints a
header with the elapsed time; re-running skips finished stages and finished evaluations.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clinprompt.backbone import Backbone
from clinprompt.config import ExperimentArgs, load_config
from clinprompt.eval.provenance import (
    backbone_description,
    budgets,
    command_line,
    format_seconds,
    hardware,
    precision_record,
    record_provenance,
)
from clinprompt.recipes.evaluate import evaluate_run
from clinprompt.recipes.report import report_runs
from clinprompt.recipes.run import run_experiment
from clinprompt.train.workspace import RunLayout, load_run_backbone

__all__ = [
    "DEMO_CONFIG",
    "StageClock",
    "evaluate_all",
    "run_demo",
    "train_stages",
]

DEMO_CONFIG = "demo"  # the packaged profile (configs/demo.yaml), loaded like smoke, cpu, gpu
SYNTHETIC_BANNER = "SYNTHETIC data — a functional demonstration, not a clinical result"
TRAIN_STAGES = (
    ("teachers", "one soft prompt per source task"),
    ("distill", "shared prompt P* and rank-one task factors, distilled from the teachers"),
    ("adapt", "P* adapted to each held-out target: full data, k-shot, zero-shot"),
    ("baseline", "single-task prompt tuning (PT) and LoRA on each target"),
)


class StageClock:
    """Stage headers with the elapsed time, and each stage's duration for the provenance."""

    def __init__(self, console: Console, total: int) -> None:
        self.console, self.total, self.start = console, total, time.perf_counter()
        self.index, self.times, self._t = 0, {}, self.start
        self._name: str | None = None

    def stage(self, name: str, what: str) -> None:
        self._close()
        self.index += 1
        self._name, self._t = name, time.perf_counter()
        elapsed = format_seconds(self._t - self.start)
        self.console.rule(
            f"[bold][{self.index}/{self.total}] {name}[/bold] — {what}  [dim](elapsed {elapsed})[/dim]"
        )

    def _close(self, status: str = "ran") -> None:
        if self._name is not None:
            self.times[self._name] = {
                "seconds": round(time.perf_counter() - self._t, 1),
                "status": status,
            }
            self._name = None

    def skipped(self) -> None:
        self.console.print("  [dim]already finished: skipped[/dim]")
        self._close("skipped")

    def finish(self) -> float:
        self._close()
        return time.perf_counter() - self.start


def _dtype_line(backbone: Backbone) -> str:
    record = precision_record(backbone)
    return f"{record['dtype']} ({record['reason']}); prompts, factors and LoRA train in fp32"


def train_stages(cfg: ExperimentArgs, backbone: Backbone, clock: StageClock) -> Any:
    """Run the four training stages one by one (each a resumable ``run_experiment`` call)."""
    layout = RunLayout(cfg.run_dir)
    for stage, what in TRAIN_STAGES:
        clock.stage(stage, what)
        if layout.done(stage) is not None:
            clock.skipped()
            continue
        run_experiment(replace(cfg, stages=[stage]), backbone=backbone)
    # Every stage is finished now: this call skips them all and collects the artifacts.
    return run_experiment(replace(cfg, stages=[s for s, _ in TRAIN_STAGES]), backbone=backbone)


def evaluate_all(
    cfg: ExperimentArgs,
    run: Any,
    backbone: Backbone,
    clock: StageClock,
    console: Console,
    limit: int | None = None,
) -> None:
    """Evaluate every artifact of ``run``, each target's floor and the zero-shot backbone (resumable)."""
    clock.stage(
        "evaluate",
        "every artifact, each target's floor and the zero-shot backbone, on the test sets",
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        job = bar.add_task("evaluating", total=None)

        def on_start(i: int, total: int, label: str) -> None:
            bar.update(job, total=total, completed=i, description=f"evaluating {label:<40}")

        evaluate_run(cfg.run_dir, cfg, run.artifacts, backbone, limit=limit, on_start=on_start)
        bar.update(job, completed=bar.tasks[0].total, description="evaluated")


def run_demo(
    out: str | Path = "runs/demo",
    backbone: str = "smollm2-135m",
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    console: Console | None = None,
    command: str | None = None,
) -> dict[str, Path]:
    """Run the demo into ``out``; return the report's paths.

    Args:
        out: the run folder (everything goes under it); re-running resumes.
        backbone: the backbone (``smollm2-135m``; ``tiny-llama`` for a seconds-long check).
        config: a config YAML (default: the packaged demo profile).
        overrides: dotted overrides applied last (``train.steps=4``).
        console: where to print (default: a new rich console).
        command: the command to record in the provenance (default: this process's ``sys.argv``).
    """
    console = console or Console()
    command = command or command_line()
    # ---- setup: the config, the run folder, the backbone
    cfg = load_config(
        config or DEMO_CONFIG, [f"backbone.name={backbone}", f"output_dir={out}", *overrides]
    )
    console.print(f"[bold yellow]{SYNTHETIC_BANNER}[/bold yellow]")
    console.print(
        f"run folder: {cfg.run_dir}   backbone: {cfg.backbone.name}   suite: {cfg.data.suite}"
    )
    n_stages = 1 + len(TRAIN_STAGES) + 2  # backbone, the training stages, evaluate, report
    clock = StageClock(console, total=n_stages)
    clock.stage("backbone", f"load {cfg.backbone.name} (converted and cached on first use)")
    model = load_run_backbone(cfg.backbone)
    console.print(f"  {model.fingerprint.describe()}, {model.num_parameters():,} parameters")
    console.print(f"  computes in {_dtype_line(model)}", markup=False)

    # ---- train, evaluate
    run = train_stages(cfg, model, clock)
    evaluate_all(cfg, run, model, clock, console)

    # ---- report, with the provenance of every figure
    clock.stage("report", "table, paired-bootstrap intervals and plots")
    record_provenance(
        cfg.run_dir,
        command=command,
        backbone=backbone_description(model),
        precision=precision_record(model),
        suite=f"{cfg.data.suite} (SYNTHETIC)",
        budgets=budgets(cfg),
        hardware=hardware(),
        stages=clock.times,
        synthetic=True,
        wall_time=f"{format_seconds(time.perf_counter() - clock.start)} (this invocation, before the report)",
    )
    _, paths = report_runs([cfg.run_dir])
    wall = clock.finish()
    console.rule(f"[bold]Result[/bold] — {SYNTHETIC_BANNER}")
    console.print(
        paths["markdown"].read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True
    )
    console.print(f"wall time: {format_seconds(wall)}")
    for name, path in [("run folder", cfg.run_dir), ("serving bank", run.bank), *paths.items()]:
        console.print(f"  {name:<14} {path}", markup=False, highlight=False, soft_wrap=True)
    return paths
