"""Paired bootstrap confidence intervals for the difference of two systems.

Both systems are scored on the same examples; each resample draws example indices with
replacement *within each target* (stratified), recomputes each target's metric for both systems
on the same indices (paired), averages over targets and takes the difference. The 2.5th and
97.5th percentiles of the resampled differences are the 95% interval.

When a system was trained with several seeds, a target's statistic is one per seed, and each
resample also draws, independently per system and per target, as many seeds as there are with
replacement: the system's value on that resample is the mean over the drawn seeds of the metric
recomputed on the drawn examples. The interval then covers the variation between training runs
as well as between test examples. Seeds are drawn from a generator of their own, so a system with
one seed gets exactly the interval it got before seeds were resampled.

A target's metric on a resample comes from a :data:`Statistic`: a function of the resampled
index array. :func:`mean_statistic` is the fast, vectorised case for metrics that are the mean
of per-example scores (accuracy, ROUGE-L, exact match); :func:`corpus_statistic` recomputes a
corpus-level metric (micro or macro F1) from the resampled examples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "BootstrapInterval",
    "SeededStatistic",
    "Statistic",
    "corpus_statistic",
    "mean_statistic",
    "paired_bootstrap",
    "resample_indices",
]

# A target's metric recomputed on resampled examples: indices (R, n) → values (R,).
Statistic = Callable[[np.ndarray], np.ndarray]
# One system on one target: a statistic, or one statistic per training seed.
SeededStatistic = Statistic | Sequence[Statistic]


@dataclass(frozen=True)
class BootstrapInterval:
    """``delta`` = mean over targets of (A − B) on the original examples, with its interval."""

    delta: float
    low: float
    high: float
    level: float
    resamples: int
    seed: int
    prob_a_better: float  # share of resamples where A − B > 0

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, scale: float = 1.0, digits: int = 1) -> str:
        """``+3.2 [+1.0, +5.4]`` (values multiplied by ``scale``)."""
        # round first so that -1e-17 prints as +0.0, not -0.0
        d, lo, hi = (round(x * scale, digits) + 0.0 for x in (self.delta, self.low, self.high))
        return f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def mean_statistic(scores: Sequence[float] | np.ndarray) -> Statistic:
    """Statistic for a metric that is the mean of per-example ``scores``."""
    values = np.asarray(scores, dtype=float)

    def stat(idx: np.ndarray) -> np.ndarray:
        return values[idx].mean(axis=-1)

    return stat


def corpus_statistic(metric: Callable[[list[int]], float]) -> Statistic:
    """Statistic for a corpus-level metric: ``metric(indices)`` scores the selected examples.

    Results are memoised per index matrix: a system compared with two others on the same
    resamples (MPT − PT, MPT − LoRA) is rescored once.
    """
    memo: dict[tuple[tuple[int, ...], bytes], np.ndarray] = {}

    def stat(idx: np.ndarray) -> np.ndarray:
        idx = np.atleast_2d(idx)
        key = (idx.shape, hashlib.sha1(np.ascontiguousarray(idx).tobytes()).digest())
        if key not in memo:
            memo[key] = np.array([metric(row.tolist()) for row in idx], dtype=float)
        return memo[key]

    return stat


def resample_indices(sizes: Sequence[int], resamples: int, seed: int) -> list[np.ndarray]:
    """One (R, n_t) index matrix per target, drawn with replacement from one seeded generator."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, size=(resamples, n)) for n in sizes]


def _per_seed(system: SeededStatistic) -> list[Statistic]:
    return [system] if callable(system) else list(system)


def _seed_mean(
    stats: list[Statistic], idx: np.ndarray, rng: np.random.Generator | None
) -> np.ndarray:
    """(R,) values: each resample's mean over seeds drawn with replacement (one seed: itself)."""
    values = np.stack([s(idx) for s in stats])  # (S, R)
    if len(stats) == 1 or rng is None:
        return values.mean(axis=0) if len(stats) > 1 else values[0]
    seeds, draws = values.shape
    picked = rng.integers(0, seeds, size=(draws, seeds))  # (R, S) seed indices
    weights = np.zeros((draws, seeds))
    np.add.at(weights, (np.arange(draws)[:, None], picked), 1.0 / seeds)  # (R, S)
    return (weights * values.T).sum(axis=1)


def paired_bootstrap(
    system_a: Sequence[SeededStatistic],
    system_b: Sequence[SeededStatistic],
    sizes: Sequence[int],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapInterval:
    """Interval for mean over targets of (metric A − metric B), paired and stratified by target.

    Args:
        system_a: per target, system A's statistic (e.g. MPT), or a list of them, one per
            training seed (seeds are then resampled too).
        system_b: the same for system B (e.g. PT), aligned with ``system_a``.
        sizes: number of examples of each target (both systems scored the same examples).
        resamples: number of bootstrap resamples R.
        seed: seed of the index generator; the same seed gives the same interval.
        level: coverage of the interval (0.95 → 2.5th and 97.5th percentiles).

    Returns:
        A :class:`BootstrapInterval`.

    Raises:
        ValueError: mismatched lengths, an empty target, a system without a seed, or a
            level outside (0, 1).
    """
    if not (len(system_a) == len(system_b) == len(sizes)) or not sizes:
        raise ValueError(
            f"need one statistic per target for both systems: got {len(system_a)} (A), "
            f"{len(system_b)} (B) and {len(sizes)} target sizes"
        )
    if any(n <= 0 for n in sizes):
        raise ValueError(f"every target needs at least one example; sizes are {list(sizes)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    seeded_a, seeded_b = [_per_seed(a) for a in system_a], [_per_seed(b) for b in system_b]
    if any(not s for s in seeded_a + seeded_b):
        raise ValueError("every system needs at least one seed's statistic on every target")
    full = [np.arange(n)[None, :] for n in sizes]
    delta = float(
        np.mean(
            [
                _seed_mean(a, i, None)[0] - _seed_mean(b, i, None)[0]
                for a, b, i in zip(seeded_a, seeded_b, full, strict=True)
            ]
        )
    )
    draws = resample_indices(sizes, resamples, seed)
    # Seed draws come from their own generator: the example draws stay those of one seed.
    seed_rng = np.random.default_rng([seed, 1])
    diffs = np.mean(
        [
            _seed_mean(a, i, seed_rng) - _seed_mean(b, i, seed_rng)
            for a, b, i in zip(seeded_a, seeded_b, draws, strict=True)
        ],
        axis=0,
    )  # (R,)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return BootstrapInterval(
        delta=delta,
        low=float(low),
        high=float(high),
        level=level,
        resamples=resamples,
        seed=seed,
        prob_a_better=float(np.mean(diffs > 0)),
    )
