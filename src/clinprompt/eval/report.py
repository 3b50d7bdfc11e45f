"""The report model: the paper's table computed from run directories (targets × methods,
parameters, average, intervals); :mod:`clinprompt.eval.tables` and :mod:`clinprompt.eval.plots`
draw it, :mod:`clinprompt.recipes.report` writes it.

Rows are the targets grouped by task type (classification targets get a second row with the
other of accuracy / macro F1, so a model that only learned the label prior shows as such);
columns are the floor, the zero-shot backbone, PT, LoRA and MPT trained on the full target pool.
Below: trainable parameters and their share of the backbone, the average over targets, and
paired-bootstrap 95% intervals of MPT − PT and MPT − LoRA on that average. A second table gives
the few-shot and zero-shot rows (k = 0, 16, 64, full) of each method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinprompt.artifacts import read_json
from clinprompt.eval.bootstrap import (
    BootstrapInterval,
    Statistic,
    corpus_statistic,
    mean_statistic,
    paired_bootstrap,
)
from clinprompt.eval.runs import (
    MAIN_COLUMNS,
    PROVENANCE_FILE,
    TYPE_ORDER,
    Evaluation,
    collect,
)
from clinprompt.train.plan import sort_settings

__all__ = ["COMPARISONS", "Report", "build_report"]

COMPARISONS = (("mpt", "pt"), ("mpt", "lora"))
_CLASSIFICATION_PAIR = ("accuracy", "macro_f1")


@dataclass
class Report:
    """Everything the table, CSV and plots are drawn from."""

    evaluations: dict[tuple[str, str, str], Evaluation]
    targets: list[str]  # ordered by task type, then name
    task_types: dict[str, str]
    metrics: dict[str, list[str]]  # target → metrics shown (primary first)
    averages: dict[str, tuple[float, int]]  # method → (mean of primary over targets, targets used)
    intervals: dict[str, BootstrapInterval] = field(default_factory=dict)  # "mpt-pt" → interval
    provenance: list[dict[str, Any]] = field(default_factory=list)
    backbone: str = "?"
    synthetic: bool = False

    def get(self, method: str, target: str, setting: str) -> Evaluation | None:
        return self.evaluations.get((method, target, setting))

    def value(
        self, method: str, target: str, setting: str, metric: str | None = None
    ) -> float | None:
        ev = self.get(method, target, setting)
        if ev is None:
            return None
        name = metric or ev.primary_metric
        return ev.metrics.get(name)

    def test_size(self, target: str) -> int:
        """Test examples of ``target`` (the largest n among its evaluations)."""
        return max((ev.n for (_, t, _), ev in self.evaluations.items() if t == target), default=0)

    def settings_of(self, method: str) -> list[str]:
        return sort_settings({s for (m, _, s) in self.evaluations if m == method})

    def curve_settings(self, methods: list[str]) -> list[str]:
        """Every setting any of ``methods`` was evaluated under, ordered by k."""
        return sort_settings({s for (m, _, s) in self.evaluations if m in methods})


# --------------------------------------------------------------------------------- building
def _statistics(
    a: Evaluation, b: Evaluation, memo: dict[Any, Statistic]
) -> tuple[Statistic, Statistic, int]:
    """Per-target statistics of two systems on their common examples (paired by id)."""
    rows_a, rows_b = a.rows(), b.rows()
    ids = sorted(set(rows_a) & set(rows_b))
    if not ids:
        raise ValueError(
            f"{a.path.parent} and {b.path.parent} share no example ids; evaluate both on the same split"
        )
    stats = []
    for ev in (a, b):
        key = (ev.key, tuple(ids))
        if key not in memo:  # reused across comparisons, so corpus metrics are rescored once
            memo[key] = _statistic(ev, ids)
        stats.append(memo[key])
    return stats[0], stats[1], len(ids)


def _statistic(ev: Evaluation, ids: list[str]) -> Statistic:
    rows = ev.rows()
    if ev.data.get("decomposable", True) or ev.spec is None:
        return mean_statistic([float(rows[i]["score"]) for i in ids])
    # A corpus-level metric (micro/macro F1): rescore each resample with the task type.
    from clinprompt.tasks.base import get_task_type

    task, spec, name = get_task_type(ev.task_type), ev.spec, ev.primary_metric
    golds = [rows[i]["gold"] for i in ids]
    preds = [
        rows[i]["prediction"] for i in ids
    ]  # unparseable ones carry their flag; score counts them
    return corpus_statistic(
        lambda idx: task.score([golds[j] for j in idx], [preds[j] for j in idx], spec)[name]
    )


def _ordered_targets(evals: list[Evaluation]) -> tuple[list[str], dict[str, str]]:
    types = {ev.target: ev.task_type for ev in evals}
    rank = {t: i for i, t in enumerate(TYPE_ORDER)}
    return sorted(types, key=lambda t: (rank.get(types[t], len(rank)), t)), types


def _shown_metrics(evals: list[Evaluation], target: str) -> list[str]:
    mine = [ev for ev in evals if ev.target == target]
    primary = mine[0].primary_metric
    shown = [primary]
    if primary in _CLASSIFICATION_PAIR and all(
        m in ev.metrics for ev in mine for m in _CLASSIFICATION_PAIR
    ):
        shown.append(_CLASSIFICATION_PAIR[1 - _CLASSIFICATION_PAIR.index(primary)])
    return shown


def build_report(run_dirs: list[str | Path], resamples: int = 1000, seed: int = 0) -> Report:
    """Read every evaluation of ``run_dirs`` and compute averages and bootstrap intervals.

    Args:
        run_dirs: run directories (later ones override earlier evaluations of the same key).
        resamples: bootstrap resamples for the MPT − PT and MPT − LoRA intervals.
        seed: bootstrap seed.

    Raises:
        FileNotFoundError: a run directory without evaluations.
    """
    evals = collect(run_dirs)
    targets, types = _ordered_targets(evals)
    by_key = {ev.key: ev for ev in evals}
    averages: dict[str, tuple[float, int]] = {}
    for method, setting in MAIN_COLUMNS:
        vals = [
            by_key[(method, t, setting)].primary for t in targets if (method, t, setting) in by_key
        ]
        if vals:
            averages[method] = (sum(vals) / len(vals), len(vals))
    intervals: dict[str, BootstrapInterval] = {}
    memo: dict[Any, Statistic] = {}
    for a_name, b_name in COMPARISONS:
        pairs = [
            (by_key.get((a_name, t, "full")), by_key.get((b_name, t, "full"))) for t in targets
        ]
        pairs = [
            (a, b) for a, b in pairs if a is not None and b is not None and a.rows() and b.rows()
        ]
        if not pairs:
            continue
        stats = [_statistics(a, b, memo) for a, b in pairs]
        intervals[f"{a_name}-{b_name}"] = paired_bootstrap(
            [s[0] for s in stats], [s[1] for s in stats], [s[2] for s in stats], resamples, seed
        )
    provenance = []
    for run in run_dirs:
        file = Path(run) / PROVENANCE_FILE
        if file.exists():
            provenance.append({"run": str(run), **read_json(file)})
    backbones = sorted({ev.backbone for ev in evals})
    return Report(
        evaluations=by_key,
        targets=targets,
        task_types=types,
        metrics={t: _shown_metrics(evals, t) for t in targets},
        averages=averages,
        intervals=intervals,
        provenance=provenance,
        backbone=", ".join(backbones),
        synthetic=any(ev.synthetic for ev in evals),
    )
