"""Quality benchmark: the open clinical suite on SmolLM2-135M, every method, then the paper's table.

    python bench/quality.py --profile cpu --data-root ../shared/data [--out runs/quality]
        [--targets e3c_en_clinical_ner,medqa_usmle] [--sources ...] [--limit 20] [key=value ...]

Runs teachers → distill → adapt (full, k = 16 and 64, zero-shot) → PT and LoRA baselines →
evaluation of every artifact, each target's floor and the zero-shot backbone → report. Prints the
exact command, the budgets, the hardware and the wall time, and writes them with the table into
the output folder (``provenance.json``, ``report/report.md``).

Resumable: re-running the same command skips finished stages, tasks and evaluations. The full
``cpu`` profile takes about two hours on 2 CPU cores; ``--targets``/``--sources`` restrict the
suite (a different subset is a different config: give it its own ``--out``), ``--limit`` the
test examples per target (evaluation only, so it can change between resumptions).
"""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console

from clinprompt.config import load_config
from clinprompt.eval.provenance import (
    backbone_description,
    budgets,
    command_line,
    format_seconds,
    hardware,
    precision_record,
    record_provenance,
)
from clinprompt.eval.report import build_report
from clinprompt.recipes.demo import StageClock, evaluate_all, train_stages
from clinprompt.recipes.report import write_report
from clinprompt.tasks import TASK_TYPES, get_task_type
from clinprompt.train.workspace import load_run_backbone


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--profile", default="cpu", help="Config profile (smoke, cpu, gpu) or a YAML file [cpu]."
    )
    parser.add_argument(
        "--data-root", default=None, help="Folder of the public datasets [../shared/data]."
    )
    parser.add_argument("--out", default="runs/quality", help="Run folder [runs/quality].")
    parser.add_argument("--suite", default=None, help="Suite [the profile's: open-clinical].")
    parser.add_argument(
        "--targets", default=None, help="Comma-separated subset of the suite's targets."
    )
    parser.add_argument(
        "--sources", default=None, help="Comma-separated subset of the suite's sources."
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="Test examples per target [the profile's data.max_test_examples].",
    )
    parser.add_argument("--backbone", default=None, help="Backbone [the profile's: smollm2-135m].")
    parser.add_argument("overrides", nargs="*", help="Dotted config overrides, e.g. train.steps=5.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    command = command_line(
        ["python", "bench/quality.py", *(sys.argv[1:] if argv is None else argv)]
    )
    # ---- setup: the config of this benchmark run
    overrides = [f"output_dir={args.out}"]
    for key, value in (
        ("data.data_root", args.data_root),
        ("data.suite", args.suite),
        ("backbone.name", args.backbone),
    ):
        if value:
            overrides.append(f"{key}={value}")
    for key, value in (("data.targets", args.targets), ("data.sources", args.sources)):
        if value:
            overrides.append(f"{key}=[{value}]")
    cfg = load_config(args.profile, [*overrides, *args.overrides])
    spent = budgets(cfg, eval_limit=args.limit)
    type_budgets = {t: get_task_type(t).max_new_tokens for t in TASK_TYPES}
    spent["max_new_tokens"] = (
        f"1.5 x the longest training target + 4, at most {cfg.data.max_target_tokens + 1} "
        f"(each task type's own budget otherwise: {type_budgets})"
    )
    machine = hardware()
    console.rule("[bold]Quality benchmark[/bold]")
    console.print(f"command:  {command}", markup=False, soft_wrap=True)
    console.print(f"budgets:  {spent}", markup=False, soft_wrap=True)
    console.print(f"hardware: {machine}", markup=False, soft_wrap=True)
    console.print(f"run folder: {cfg.run_dir}", markup=False)

    # ---- backbone, training stages, evaluation (each resumable)
    clock = StageClock(console, total=7)
    clock.stage("backbone", f"load {cfg.backbone.name}")
    backbone = load_run_backbone(cfg.backbone)
    run = train_stages(cfg, backbone, clock)
    evaluate_all(cfg, run, backbone, clock, console, limit=args.limit)

    # ---- report with the provenance of every figure
    clock.stage("report", "table, paired-bootstrap intervals and plots")
    wall = time.perf_counter() - clock.start
    record_provenance(
        cfg.run_dir,
        command=command,
        backbone=backbone_description(backbone),
        precision=precision_record(backbone),
        suite=cfg.data.suite,
        budgets=spent,
        hardware=hardware(),  # at the end: the load average covers the last 15 minutes
        stages=clock.times,
        wall_time=f"{format_seconds(wall)} for this invocation (stages that ran before a resume keep their own times)",
    )
    paths = write_report(build_report([cfg.run_dir]), cfg.run_dir / "report")
    wall = clock.finish()
    console.rule("[bold]Result[/bold]")
    console.print(
        paths["markdown"].read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True
    )
    console.print(
        f"wall time: {format_seconds(wall)}   command: {command}", markup=False, soft_wrap=True
    )
    for name, path in paths.items():
        console.print(f"  {name:<14} {path}", markup=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
