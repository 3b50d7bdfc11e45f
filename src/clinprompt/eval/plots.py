"""Plots of a report, readable on their own: titles name the backbone, axes name the metric.

* :func:`plot_targets` — one group of bars per target (zero-shot, PT, LoRA, MPT), the floor
  drawn as a dashed line across its group;
* :func:`plot_fewshot` — one panel per target: primary metric against the number of target
  training examples k (0, 16, 64, full) for PT and MPT (and LoRA where evaluated);
* :func:`plot_losses` — one training stage's train and dev loss against the optimizer step:
  a panel per source (teachers), the loss and its parts (distillation), a panel per target and
  setting with one thin line per seed (adaptation, PT, LoRA).

Where a cell has several training seeds, bars and points show the mean with the standard
deviation as an error bar.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from clinprompt.eval.curves import STAGES, LossLog  # noqa: E402
from clinprompt.eval.report import Report  # noqa: E402
from clinprompt.eval.runs import METHOD_LABELS, metric_label  # noqa: E402
from clinprompt.train.plan import sort_settings  # noqa: E402

__all__ = ["plot_fewshot", "plot_losses", "plot_targets"]

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
        xs, ys, errs = [], [], []
        for j, t in enumerate(targets):
            value = report.value(method, t, setting)
            if value is not None:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(100 * value)
                errs.append(100 * (report.spread(method, t, setting) or 0.0))
        bars = ax.bar(
            xs,
            ys,
            width,
            yerr=errs if any(errs) else None,  # sd over training seeds
            capsize=2,
            label=METHOD_LABELS.get(method, method),
            color=_COLORS.get(method),
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
    seeded = any(report.spread(m, t, s) for m, s in methods for t in targets)
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title="method (full target pool)" + ("\nerror bars: sd over seeds" if seeded else ""),
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
            pts = [
                (i, report.value(m, t, s), report.spread(m, t, s)) for i, s in enumerate(settings)
            ]
            pts = [(i, 100 * v, 100 * (sd or 0.0)) for i, v, sd in pts if v is not None]
            if pts:
                ax.errorbar(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    yerr=[p[2] for p in pts] if any(p[2] for p in pts) else None,
                    capsize=2,
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


# ------------------------------------------------------------------------------ loss curves
_TRAIN_COLOR, _DEV_COLOR = "#1f77b4", "#d62728"
_PART_COLORS = {"loss": "black", "lm": "#1f77b4", "kl": "#ff7f0e", "mse": "#2ca02c"}


def _xy(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [p[0] for p in points], [p[1] for p in points]


def _mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """The mean over seeds at the steps every seed logged (empty when they share none)."""
    shared = set.intersection(*[{s for s, _ in c} for c in curves]) if curves else set()
    tables = [dict(c) for c in curves]
    return [(s, sum(t[s] for t in tables) / len(tables)) for s in sorted(shared)]


def _train_dev_panel(ax, logs: list[LossLog], title: str) -> None:
    """Train (line) and dev (line with dots) loss; several seeds: thin lines plus their mean."""
    many = len(logs) > 1
    for log in logs:
        x, y = _xy(log.train.get("loss", []))
        ax.plot(x, y, color=_TRAIN_COLOR, linewidth=0.8 if many else 1.4, alpha=0.45 if many else 1)
        x, y = _xy(log.dev)
        ax.plot(
            x,
            y,
            color=_DEV_COLOR,
            marker="o",
            markersize=2.5 if many else 3.5,
            linewidth=0.8 if many else 1.4,
            alpha=0.45 if many else 1,
        )
    if many:
        for points, color in (
            (_mean_curve([log.train.get("loss", []) for log in logs]), _TRAIN_COLOR),
            (_mean_curve([log.dev for log in logs]), _DEV_COLOR),
        ):
            ax.plot(*_xy(points), color=color, linewidth=2.0)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("optimizer step", fontsize=8)
    ax.set_ylabel("loss (per target token)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _legend_handles(seeds: bool) -> tuple[list, list[str]]:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=_TRAIN_COLOR, linewidth=1.4),
        Line2D([], [], color=_DEV_COLOR, marker="o", markersize=3.5, linewidth=1.4),
    ]
    labels = ["train loss", "dev loss"]
    if seeds:
        handles = [
            Line2D([], [], color=_TRAIN_COLOR, linewidth=0.8, alpha=0.45),
            Line2D([], [], color=_TRAIN_COLOR, linewidth=2.0),
            Line2D([], [], color=_DEV_COLOR, marker="o", markersize=2.5, linewidth=0.8, alpha=0.45),
            Line2D([], [], color=_DEV_COLOR, linewidth=2.0),
        ]
        labels = [
            "train loss, one seed",
            "train loss, mean",
            "dev loss, one seed",
            "dev loss, mean",
        ]
    return handles, labels


def _grid(panels: int, cols: int, width: float = 3.4, height: float = 2.7):
    cols = max(1, min(panels, cols))
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.9), squeeze=False)
    return fig, axes


def plot_losses(report: Report, stage: str, logs: list[LossLog], path: str | Path) -> Path:
    """Train and dev loss of one training stage against the optimizer step; saved as PNG.

    Args:
        report: the report (titles name its backbone).
        stage: ``teachers``, ``distill``, ``adapt``, ``pt`` or ``lora``.
        logs: that stage's logs (:func:`clinprompt.eval.curves.collect_curves`).
        path: the PNG to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seeds = False
    if stage == "distill":
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), squeeze=False)
        left, right = axes[0]
        # The dev loss is the LM loss alone (dev is scored without the teachers): the left panel
        # sets it beside the train LM part, the right one shows the weighted total and its parts.
        lm_logs = [
            LossLog(
                log.stage,
                log.name,
                log.setting,
                log.seed,
                log.path,
                train={"loss": log.train.get("lm", log.train.get("loss", []))},
                dev=log.dev,
            )
            for log in logs
        ]
        _train_dev_panel(left, lm_logs, "LM loss (next token): train and dev")
        left.legend(*_legend_handles(False), fontsize=8)
        parts = [p for p in ("loss", "lm", "kl", "mse") if any(p in log.train for log in logs)]
        parts += sorted({p for log in logs for p in log.train} - set(parts))
        values = []
        for log in logs:
            for part in parts:
                x, y = _xy(log.train.get(part, []))
                values += y
                right.plot(
                    x,
                    y,
                    color=_PART_COLORS.get(part),
                    linewidth=1.8 if part == "loss" else 1.2,
                    label="train total (weighted)" if part == "loss" else f"train {part}",
                )
        if values and min(values) > 0 and max(values) / min(values) > 20:
            right.set_yscale("log")  # kl and mse can be orders of magnitude apart
        right.set_title(
            "train loss and its parts (lm: next token, kl: teacher logits, mse: hidden)",
            fontsize=9,
        )
        right.set_xlabel("optimizer step", fontsize=8)
        right.set_ylabel("loss; parts before their weights", fontsize=8)
        right.tick_params(labelsize=7)
        right.grid(alpha=0.3)
        if parts:
            right.legend(fontsize=8)
    elif stage == "teachers":
        fig, axes = _grid(len(logs), 6)
        for ax, log in zip(axes.flat, logs, strict=False):
            _train_dev_panel(ax, [log], log.name)
    else:
        groups: dict[tuple[str, str], list[LossLog]] = {}
        for log in logs:
            groups.setdefault((log.name, log.setting or "full"), []).append(log)
        targets = [t for t in report.targets if any(g[0] == t for g in groups)]
        targets += sorted({g[0] for g in groups} - set(targets))
        settings = list(reversed(sort_settings({g[1] for g in groups})))  # full first
        seeds = any(len(g) > 1 for g in groups.values())
        fig, axes = plt.subplots(
            len(settings),
            len(targets),
            figsize=(3.6 * len(targets), 2.8 * len(settings) + 0.9),
            squeeze=False,
        )
        for r, setting in enumerate(settings):
            for c, target in enumerate(targets):
                ax = axes[r][c]
                group = groups.get((target, setting))
                if not group:
                    ax.axis("off")
                    continue
                label = "full pool" if setting == "full" else f"k = {setting[1:]}"
                n = f", {len(group)} seeds" if len(group) > 1 else ""
                _train_dev_panel(ax, group, f"{target} ({label}{n})")
    for ax in list(axes.flat)[len(logs) if stage == "teachers" else len(axes.flat) :]:
        ax.axis("off")
    if stage != "distill":
        handles, labels = _legend_handles(seeds)
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(_title(report, f"Loss curves: {STAGES.get(stage, stage)}"))
    fig.tight_layout(rect=(0, 0.05 if stage != "distill" else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
