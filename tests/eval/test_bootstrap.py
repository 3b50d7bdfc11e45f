"""Paired bootstrap: known answers on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from clinprompt.eval.bootstrap import corpus_statistic, mean_statistic, paired_bootstrap


def test_identical_systems_interval_contains_zero():
    rng = np.random.default_rng(1)
    scores = [rng.random(50), rng.integers(0, 2, 80).astype(float)]
    a = [mean_statistic(s) for s in scores]
    b = [mean_statistic(s.copy()) for s in scores]
    iv = paired_bootstrap(a, b, [50, 80], resamples=200, seed=0)
    assert iv.delta == 0.0
    assert iv.low <= 0.0 <= iv.high
    assert not iv.excludes_zero()


def test_strictly_better_system_interval_above_zero():
    rng = np.random.default_rng(2)
    base = [rng.random(40), rng.random(60)]
    better = [s + 0.1 for s in base]  # every example improves by 0.1
    iv = paired_bootstrap(
        [mean_statistic(s) for s in better],
        [mean_statistic(s) for s in base],
        [40, 60],
        resamples=300,
        seed=3,
    )
    assert iv.delta == pytest.approx(0.1)
    assert iv.low > 0 and iv.excludes_zero()
    assert iv.prob_a_better == 1.0
    assert iv.describe(100) == "+10.0 [+10.0, +10.0]"


def test_noisy_improvement_interval_brackets_delta_and_is_seeded():
    rng = np.random.default_rng(4)
    b = rng.integers(0, 2, 200).astype(float)
    a = np.where(rng.random(200) < 0.3, 1.0, b)  # A fixes ~30% of B's errors, never worse
    args = ([mean_statistic(a)], [mean_statistic(b)], [200])
    iv1 = paired_bootstrap(*args, resamples=500, seed=7)
    iv2 = paired_bootstrap(*args, resamples=500, seed=7)
    assert iv1 == iv2
    assert iv1.low <= iv1.delta <= iv1.high
    assert iv1.low > 0


def test_corpus_statistic_matches_mean_for_a_mean_metric():
    scores = np.array([1.0, 0.0, 1.0, 1.0])
    corpus = corpus_statistic(lambda idx: float(np.mean(scores[idx])))
    idx = np.array([[0, 1, 1, 3], [2, 2, 2, 2]])
    assert np.allclose(corpus(idx), mean_statistic(scores)(idx))


def test_bad_input_is_reported():
    s = mean_statistic([1.0])
    with pytest.raises(ValueError, match="one statistic per target"):
        paired_bootstrap([s], [s, s], [1])
    with pytest.raises(ValueError, match="at least one example"):
        paired_bootstrap([s], [s], [0])
