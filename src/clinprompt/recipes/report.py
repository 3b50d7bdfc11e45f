"""The report of one or more runs: collect → build → render → write.

``clinprompt report RUN_DIR [RUN_DIR ...] [--out DIR]``

Reads every evaluation under ``RUN/eval/`` (a later run directory's evaluation replaces an
earlier one of the same method, target and setting), builds the :class:`Report` (averages,
paired-bootstrap intervals), renders it as Markdown and CSV and draws the plots, then writes::

    OUT/report.md      the paper's table, intervals, few-shot rows, notes and provenance
    OUT/table.csv      the paper's table
    OUT/results.csv    every metric of every evaluation (long format)
    OUT/report.json    averages, intervals, provenance
    OUT/targets.png    per-target bars; OUT/fewshot.png: metric against k (when evaluated)
"""

from __future__ import annotations

import platform
from pathlib import Path

from clinprompt.artifacts import atomic_write_text, write_json
from clinprompt.eval.report import Report, build_report
from clinprompt.eval.tables import fewshot_rows, render_csv, render_long_csv, render_markdown

__all__ = ["report_runs", "write_report"]


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


def write_report(report: Report, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write ``report.md``, ``table.csv``, ``results.csv`` (long), ``report.json`` and the plots."""
    out = Path(out_dir)
    paths = {
        "markdown": atomic_write_text(out / "report.md", render_markdown(report)),
        "csv": atomic_write_text(out / "table.csv", render_csv(report)),
        "long_csv": atomic_write_text(out / "results.csv", render_long_csv(report)),
        "json": write_json(
            out / "report.json",
            {
                "backbone": report.backbone,
                "synthetic": report.synthetic,
                "targets": report.targets,
                "averages": {
                    m: {"value": v, "targets": n} for m, (v, n) in report.averages.items()
                },
                "intervals": {k: iv.to_dict() for k, iv in report.intervals.items()},
                "provenance": report.provenance,
                "python": platform.python_version(),
            },
        ),
    }
    if plots:
        # matplotlib is imported only when plots are drawn.
        from clinprompt.eval.plots import plot_fewshot, plot_targets

        paths["plot_targets"] = plot_targets(report, out / "targets.png")
        if fewshot_rows(report)[1]:
            paths["plot_fewshot"] = plot_fewshot(report, out / "fewshot.png")
    return paths
