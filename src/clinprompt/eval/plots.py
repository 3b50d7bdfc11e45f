"""Plots of a report, readable on their own: titles name the backbone, axes name the metric.

* :func:`plot_targets` — one group of bars per target (zero-shot, PT, LoRA, MPT), the floor
  drawn as a dashed line across its group;
* :func:`plot_fewshot` — one panel per target: primary metric against the number of target
  training examples k (0, 16, 64, full) for PT and MPT (and LoRA where evaluated).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from clinprompt.eval.report import Report  # noqa: E402
from clinprompt.eval.runs import METHOD_LABELS, metric_label  # noqa: E402

__all__ = ["plot_fewshot", "plot_targets"]

_BAR_METHODS = (("zeroshot", "k0"), ("pt", "full"), ("lora", "full"), ("mpt", "full"))
_COLORS = {"zeroshot": "#9e9e9e", "pt": "#1f77b4", "lora": "#ff7f0e", "mpt": "#2ca02c"}


def _title(report: Report, what: str) -> str:
    suffix = " — SYNTHETIC data" if report.synthetic else ""
    return f"{what} on {report.backbone}{suffix}"


def plot_targets(report: Report, path: str | Path) -> Path:
    """Grouped bars of each target's primary metric by method, floor marked; saved as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    targets = report.targets
    methods = [(m, s) for m, s in _BAR_METHODS if any(report.get(m, t, s) for t in targets)]
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.9 * len(targets) + 3.5), 4.8))
    for i, (method, setting) in enumerate(methods):
        xs, ys = [], []
        for j, t in enumerate(targets):
            value = report.value(method, t, setting)
            if value is not None:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(100 * value)
        bars = ax.bar(
            xs, ys, width, label=METHOD_LABELS.get(method, method), color=_COLORS.get(method)
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    floor_drawn = False
    for j, t in enumerate(targets):
        floor = report.value("floor", t, "full")
        if floor is not None:
            ax.hlines(
                100 * floor,
                j - 0.45,
                j + 0.45,
                colors="black",
                linestyles="--",
                linewidth=1.2,
                label=None if floor_drawn else "floor (trivial baseline)",
            )
            floor_drawn = True
    ax.set_xticks(range(len(targets)))
    ax.set_xticklabels(
        [
            f"{t}\n({report.task_types[t].upper()}, {metric_label(report.metrics[t][0])}, n={report.test_size(t)})"
            for t in targets
        ],
        fontsize=8,
    )
    ax.set_ylabel("primary metric of each target (×100)")
    ax.set_ylim(0, max(5.0, ax.get_ylim()[1] * 1.1))
    ax.set_title(_title(report, "Test score by target and method"))
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title="method (full target pool)",
        title_fontsize=8,
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_fewshot(report: Report, path: str | Path) -> Path:
    """Primary metric against k (0, 16, 64, full), one panel per target; saved as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    targets = report.targets
    methods = [m for m in ("pt", "mpt", "lora") if report.settings_of(m)]
    settings = report.curve_settings(methods)
    labels = ["full" if s == "full" else s[1:] for s in settings]
    cols = min(len(targets), 3)
    rows = (len(targets) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, t in zip(axes.flat, targets, strict=False):
        for m in methods:
            pts = [(i, report.value(m, t, s)) for i, s in enumerate(settings)]
            pts = [(i, 100 * v) for i, v in pts if v is not None]
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    marker="o",
                    label=METHOD_LABELS.get(m, m),
                    color=_COLORS.get(m),
                )
        floor = report.value("floor", t, "full")
        if floor is not None:
            ax.axhline(100 * floor, color="black", linestyle="--", linewidth=1, label="floor")
        ax.set_xticks(range(len(settings)))
        ax.set_xticklabels(labels)
        ax.set_xlabel("target training examples k")
        ax.set_ylabel(f"{metric_label(report.metrics[t][0])} (×100)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{t} ({report.task_types[t].upper()})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(targets) :]:
        ax.axis("off")
    fig.suptitle(_title(report, "Few-shot curves: test score vs. target training examples"))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
