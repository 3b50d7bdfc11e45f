"""The report model: the paper's table computed from run directories (targets × methods,
parameters, average, intervals); :mod:`clinprompt.eval.tables` and :mod:`clinprompt.eval.plots`
draw it, :mod:`clinprompt.recipes.report` writes it.

Rows are the targets grouped by task type (classification targets get a second row with the
other of accuracy / macro F1, so a model that only learned the label prior shows as such);
columns are the floor, the zero-shot backbone, PT, LoRA and MPT trained on the full target pool.
A trained method evaluated with several training seeds fills its cell with the mean over seeds
(:class:`Cell`; the tables add the standard deviation). Below: trainable parameters and their
share of the backbone, the average over targets (of the per-target means), and paired-bootstrap
95% intervals of MPT − PT and MPT − LoRA on that average (examples and seeds resampled). A
second table gives the few-shot and zero-shot rows (k = 0, 16, 64, full) of each method. The
report also carries what training used (chosen learning rates, examples, steps, epochs), the
loss curves of each training stage and the task formulations recorded by the evaluations.
"""

from __future__ import annotations

import statistics
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
from clinprompt.eval.curves import LossLog, collect_curves
from clinprompt.eval.runs import (
    MAIN_COLUMNS,
    PROVENANCE_FILE,
    TYPE_ORDER,
    Evaluation,
    collect,
)
from clinprompt.train.plan import sort_settings

__all__ = ["COMPARISONS", "Cell", "Report", "build_report", "chosen_learning_rates"]

COMPARISONS = (("mpt", "pt"), ("mpt", "lora"))
_CLASSIFICATION_PAIR = ("accuracy", "macro_f1")


@dataclass
class Cell:
    """One (method, target, setting) of the table: its evaluations, one per training seed."""

    runs: list[Evaluation]  # ordered by seed; never empty

    @property
    def first(self) -> Evaluation:
        return self.runs[0]

    @property
    def method(self) -> str:
        return self.first.method

    @property
    def target(self) -> str:
        return self.first.target

    @property
    def setting(self) -> str:
        return self.first.setting

    @property
    def task_type(self) -> str:
        return self.first.task_type

    @property
    def primary_metric(self) -> str:
        return self.first.primary_metric

    @property
    def seeds(self) -> list[int]:
        return [ev.seed for ev in self.runs]

    @property
    def n(self) -> int:
        """Test examples (the largest n among the seeds)."""
        return max(ev.n for ev in self.runs)

    @property
    def trainable_params(self) -> int | None:
        return self.first.trainable_params

    @property
    def backbone_params(self) -> int | None:
        return self.first.backbone_params

    def values(self, metric: str | None = None) -> list[float]:
        """``metric`` (default: the primary) of each seed that reports it, in seed order."""
        name = metric or self.primary_metric
        return [float(ev.metrics[name]) for ev in self.runs if name in ev.metrics]

    def mean(self, metric: str | None = None) -> float | None:
        values = self.values(metric)
        # sum/len, not statistics.mean: one seed gives its value exactly, as before seeds
        return sum(values) / len(values) if values else None

    def sd(self, metric: str | None = None) -> float | None:
        """Sample standard deviation over seeds (n − 1); None with fewer than two seeds."""
        values = self.values(metric)
        return statistics.stdev(values) if len(values) > 1 else None

    @property
    def primary(self) -> float:
        value = self.mean()
        return float("nan") if value is None else value


@dataclass
class Report:
    """Everything the table, CSV and plots are drawn from."""

    evaluations: dict[tuple[str, str, str], Cell]
    targets: list[str]  # ordered by task type, then name
    task_types: dict[str, str]
    metrics: dict[str, list[str]]  # target → metrics shown (primary first)
    averages: dict[str, tuple[float, int]]  # method → (mean of per-target means, targets used)
    intervals: dict[str, BootstrapInterval] = field(default_factory=dict)  # "mpt-pt" → interval
    # "mpt-pt" → method → the most seeds any target's cell was resampled over
    interval_seeds: dict[str, dict[str, int]] = field(default_factory=dict)
    provenance: list[dict[str, Any]] = field(default_factory=list)
    backbone: str = "?"
    synthetic: bool = False
    # method → target → the learning rate training chose (see chosen_learning_rates)
    chosen_lr: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    curves: dict[str, list[LossLog]] = field(default_factory=dict)  # stage → logs
    curve_notes: list[str] = field(default_factory=list)

    def get(self, method: str, target: str, setting: str) -> Cell | None:
        return self.evaluations.get((method, target, setting))

    def value(
        self, method: str, target: str, setting: str, metric: str | None = None
    ) -> float | None:
        """The mean over seeds of ``metric`` (default: the primary), or None."""
        cell = self.get(method, target, setting)
        return None if cell is None else cell.mean(metric)

    def spread(
        self, method: str, target: str, setting: str, metric: str | None = None
    ) -> float | None:
        """The standard deviation over seeds, or None (one seed, or not evaluated)."""
        cell = self.get(method, target, setting)
        return None if cell is None else cell.sd(metric)

    def runs(self) -> list[Evaluation]:
        """Every evaluation, each seed on its own, in (method, target, setting, seed) order."""
        return sorted(
            (ev for cell in self.evaluations.values() for ev in cell.runs), key=lambda e: e.run_key
        )

    def seeds_of(self, method: str) -> int:
        """The most training seeds any cell of ``method`` has (0: not evaluated)."""
        return max(
            (len(c.runs) for (m, _, _), c in self.evaluations.items() if m == method), default=0
        )

    @property
    def multi_seed(self) -> bool:
        """True when some cell averages more than one training seed."""
        return any(len(c.runs) > 1 for c in self.evaluations.values())

    def test_size(self, target: str) -> int:
        """Test examples of ``target`` (the largest n among its evaluations)."""
        return max((c.n for (_, t, _), c in self.evaluations.items() if t == target), default=0)

    def settings_of(self, method: str) -> list[str]:
        return sort_settings({s for (m, _, s) in self.evaluations if m == method})

    def curve_settings(self, methods: list[str]) -> list[str]:
        """Every setting any of ``methods`` was evaluated under, ordered by k."""
        return sort_settings({s for (m, _, s) in self.evaluations if m in methods})

    def formulations(self) -> dict[str, dict[str, list[str]]]:
        """target → formulation → methods, for the evaluations that record how the task was
        posed (RE: per-pair classification or generation); the floor is left out."""
        out: dict[str, dict[str, list[str]]] = {}
        for ev in self.runs():
            text = ev.formulation
            if text is None or ev.method == "floor":
                continue
            methods = out.setdefault(ev.target, {}).setdefault(text, [])
            if ev.method not in methods:
                methods.append(ev.method)
        return out


# --------------------------------------------------------------------------------- building
def _statistics(
    a: Cell, b: Cell, memo: dict[Any, Statistic]
) -> tuple[list[Statistic], list[Statistic], int]:
    """Per-target statistics of two systems (one per seed) on their common examples (by id)."""
    runs_a = [ev for ev in a.runs if ev.rows()]
    runs_b = [ev for ev in b.runs if ev.rows()]
    ids_sets = [set(ev.rows()) for ev in runs_a + runs_b]
    ids = sorted(set.intersection(*ids_sets))
    if not ids:
        raise ValueError(
            f"{runs_a[0].path.parent} and {runs_b[0].path.parent} share no example ids; "
            "evaluate both on the same split"
        )
    stats: list[list[Statistic]] = []
    for runs in (runs_a, runs_b):
        per_seed = []
        for ev in runs:
            key = (ev.run_key, tuple(ids))
            if key not in memo:  # reused across comparisons, so corpus metrics are rescored once
                memo[key] = _statistic(ev, ids)
            per_seed.append(memo[key])
        stats.append(per_seed)
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


def _cells(evals: list[Evaluation]) -> dict[tuple[str, str, str], Cell]:
    runs: dict[tuple[str, str, str], list[Evaluation]] = {}
    for ev in sorted(evals, key=lambda e: e.run_key):
        runs.setdefault(ev.key, []).append(ev)
    return {key: Cell(group) for key, group in runs.items()}


def chosen_learning_rates(
    cells: dict[tuple[str, str, str], Cell],
) -> dict[str, dict[str, dict[str, Any]]]:
    """method → target → the learning rate its training chose on the target's dev split.

    Each entry: ``chosen_lr`` (``{"lr": x}``, or ``{"lr_shared": a, "lr_factors": b}`` for MPT's
    two rates), ``lr_candidates`` (candidate → best dev loss), ``lr_judged_at`` (the step the
    candidates were judged at; None: the end of their budget), ``lr_judged_by`` (``loss`` or
    ``score``) and ``lr_candidate_scores`` (candidate → dev score; {} when judged by loss) of the
    reference run — the
    full setting's first seed, else the first trained setting's —, its ``setting`` and ``seed``,
    and ``by_setting`` (setting → seed → chosen_lr) over every trained run, with
    ``same_in_all_runs`` saying whether they all agree. Methods and targets without a
    ``training`` record (floor, zero-shot, older runs) are absent.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    groups: dict[tuple[str, str], list[Evaluation]] = {}
    for (method, target, _), cell in cells.items():
        for ev in cell.runs:
            if ev.training and "chosen_lr" in ev.training:
                groups.setdefault((method, target), []).append(ev)
    for (method, target), runs in sorted(groups.items()):
        order = {s: i for i, s in enumerate(reversed(sort_settings({ev.setting for ev in runs})))}
        ref = min(runs, key=lambda ev: (order[ev.setting], ev.seed))  # full first, then by k
        by_setting: dict[str, dict[str, Any]] = {}
        for ev in sorted(runs, key=lambda e: e.run_key):
            by_setting.setdefault(ev.setting, {})[str(ev.seed)] = ev.training["chosen_lr"]
        choices = [c for seeds in by_setting.values() for c in seeds.values()]
        out.setdefault(method, {})[target] = {
            "chosen_lr": ref.training["chosen_lr"],
            "lr_candidates": ref.training.get("lr_candidates", {}),
            "lr_judged_at": ref.training.get("lr_judged_at"),
            "lr_judged_by": ref.training.get("lr_judged_by", "loss"),
            "lr_candidate_scores": ref.training.get("lr_candidate_scores", {}),
            "setting": ref.setting,
            "seed": ref.seed,
            "same_in_all_runs": all(c == choices[0] for c in choices),
            "by_setting": by_setting,
        }
    return out


def build_report(
    run_dirs: list[str | Path], resamples: int = 1000, seed: int = 0, curves: bool = True
) -> Report:
    """Read every evaluation of ``run_dirs`` and compute averages and bootstrap intervals.

    Args:
        run_dirs: run directories (later ones override earlier evaluations of the same
            method, target, setting and training seed).
        resamples: bootstrap resamples for the MPT − PT and MPT − LoRA intervals.
        seed: bootstrap seed.
        curves: also read the training stages' loss logs.

    Raises:
        FileNotFoundError: a run directory without evaluations.
    """
    evals = collect(run_dirs)
    targets, types = _ordered_targets(evals)
    cells = _cells(evals)
    averages: dict[str, tuple[float, int]] = {}
    for method, setting in MAIN_COLUMNS:
        # the average of the per-target means over seeds
        vals = [
            cells[(method, t, setting)].primary for t in targets if (method, t, setting) in cells
        ]
        if vals:
            averages[method] = (sum(vals) / len(vals), len(vals))
    intervals: dict[str, BootstrapInterval] = {}
    interval_seeds: dict[str, dict[str, int]] = {}
    memo: dict[Any, Statistic] = {}
    for a_name, b_name in COMPARISONS:
        pairs = [(cells.get((a_name, t, "full")), cells.get((b_name, t, "full"))) for t in targets]
        pairs = [
            (a, b)
            for a, b in pairs
            if a is not None
            and b is not None
            and any(ev.rows() for ev in a.runs)
            and any(ev.rows() for ev in b.runs)
        ]
        if not pairs:
            continue
        stats = [_statistics(a, b, memo) for a, b in pairs]
        name = f"{a_name}-{b_name}"
        intervals[name] = paired_bootstrap(
            [s[0] for s in stats], [s[1] for s in stats], [s[2] for s in stats], resamples, seed
        )
        interval_seeds[name] = {
            a_name: max(len(s[0]) for s in stats),
            b_name: max(len(s[1]) for s in stats),
        }
    provenance = []
    for run in run_dirs:
        file = Path(run) / PROVENANCE_FILE
        if file.exists():
            provenance.append({"run": str(run), **read_json(file)})
    backbones = sorted({ev.backbone for ev in evals})
    logs, notes = collect_curves(run_dirs, evals) if curves else ({}, [])
    return Report(
        evaluations=cells,
        targets=targets,
        task_types=types,
        metrics={t: _shown_metrics(evals, t) for t in targets},
        averages=averages,
        intervals=intervals,
        interval_seeds=interval_seeds,
        provenance=provenance,
        backbone=", ".join(backbones),
        synthetic=any(ev.synthetic for ev in evals),
        chosen_lr=chosen_learning_rates(cells),
        curves=logs,
        curve_notes=notes,
    )
