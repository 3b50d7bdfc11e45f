"""The report of one or more runs: collect → build → render → write.

``clinprompt report RUN_DIR [RUN_DIR ...] [--out DIR]``

Reads every evaluation under ``RUN/eval/`` (a later run directory's evaluation replaces an
earlier one of the same method, target, setting and training seed), builds the :class:`Report`
(means over seeds, averages, paired-bootstrap intervals, chosen learning rates, loss curves),
renders it as Markdown and CSV and draws the plots, then writes::

    OUT/report.md      the paper's table, intervals, few-shot rows, training (learning rates,
                       examples, steps), loss curves, notes and provenance
    OUT/table.csv      the paper's table (with sd and seed counts when there are several seeds)
    OUT/results.csv    every metric of every evaluation and seed (long format)
    OUT/report.json    averages, intervals, cells (mean, sd, per-seed values), every
                       evaluation, chosen_lr per method and target, curves, provenance
    OUT/targets.png    per-target bars; OUT/fewshot.png: metric against k (when evaluated)
    OUT/loss-<stage>.png  train and dev loss of each training stage present (teachers,
                       distill, adapt, pt, lora), linked from report.md
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from clinprompt.artifacts import atomic_write_text, write_json
from clinprompt.eval.report import Report, build_report
from clinprompt.eval.tables import fewshot_rows, render_csv, render_long_csv, render_markdown

__all__ = ["report_json", "report_runs", "write_report"]


def report_runs(
    run_dirs: list[str | Path],
    out_dir: str | Path | None = None,
    resamples: int = 1000,
    seed: int = 0,
    plots: bool = True,
) -> tuple[Report, dict[str, Path]]:
    """Build the report of ``run_dirs`` and write it into ``out_dir`` (default: FIRST_RUN/report).

    Args:
        run_dirs: run directories (later ones override earlier evaluations of the same key).
        out_dir: the output folder.
        resamples: bootstrap resamples for the MPT − PT and MPT − LoRA intervals.
        seed: bootstrap seed.
        plots: also draw the PNG plots.

    Returns:
        The report and the path of every file written, by kind (``markdown``, ``csv``, ...).

    Raises:
        FileNotFoundError: a run directory without evaluations.
        ValueError: two evaluations to compare share no example ids.
    """
    report = build_report(run_dirs, resamples=resamples, seed=seed)
    out = Path(run_dirs[0]) / "report" if out_dir is None else Path(out_dir)
    return report, write_report(report, out, plots=plots)


def report_json(report: Report) -> dict[str, Any]:
    """Everything the report knows, as JSON: the keys of the first reports (backbone, synthetic,
    targets, averages, intervals, provenance) plus, per seed, every evaluation."""
    return {
        "backbone": report.backbone,
        "synthetic": report.synthetic,
        "targets": report.targets,
        "averages": {m: {"value": v, "targets": n} for m, (v, n) in report.averages.items()},
        "intervals": {k: iv.to_dict() for k, iv in report.intervals.items()},
        "provenance": report.provenance,
        "python": platform.python_version(),
        # method → most seeds resampled for the interval's targets
        "interval_seeds": report.interval_seeds,
        "cells": [
            {
                "method": m,
                "target": t,
                "setting": s,
                "metric": metric,
                "mean": cell.mean(metric),
                "sd": cell.sd(metric),
                "n_seeds": len(cell.values(metric)),
                "seeds": [ev.seed for ev in cell.runs if metric in ev.metrics],
                "values": cell.values(metric),
            }
            for (m, t, s), cell in sorted(report.evaluations.items())
            for metric in sorted({k for ev in cell.runs for k in ev.metrics})
        ],
        "evaluations": [
            {
                "method": ev.method,
                "target": ev.target,
                "setting": ev.setting,
                "seed": ev.seed,
                "task_type": ev.task_type,
                "primary_metric": ev.primary_metric,
                "metrics": ev.metrics,
                "n": ev.n,
                "unparseable": ev.unparseable,
                "training": ev.training,
                "formulation": ev.formulation,
                "path": str(ev.path.parent),
            }
            for ev in report.runs()
        ],
        "chosen_lr": report.chosen_lr,
        "curves": {stage: [log.to_dict() for log in logs] for stage, logs in report.curves.items()},
        "curve_notes": report.curve_notes,
    }


def write_report(report: Report, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write ``report.md``, ``table.csv``, ``results.csv`` (long), ``report.json`` and the plots
    (``loss-<stage>.png`` for every training stage with a log, linked from ``report.md``)."""
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    figures: dict[str, str] = {}
    if plots:
        # matplotlib is imported only when plots are drawn.
        from clinprompt.eval.plots import plot_fewshot, plot_losses, plot_targets

        paths["plot_targets"] = plot_targets(report, out / "targets.png")
        if fewshot_rows(report)[1]:
            paths["plot_fewshot"] = plot_fewshot(report, out / "fewshot.png")
        for stage, logs in report.curves.items():
            name = f"loss-{stage}.png"
            paths[f"plot_loss_{stage}"] = plot_losses(report, stage, logs, out / name)
            figures[stage] = name
    written = {
        "markdown": atomic_write_text(out / "report.md", render_markdown(report, figures)),
        "csv": atomic_write_text(out / "table.csv", render_csv(report)),
        "long_csv": atomic_write_text(out / "results.csv", render_long_csv(report)),
        "json": write_json(out / "report.json", report_json(report)),
    }
    return {**written, **paths}
