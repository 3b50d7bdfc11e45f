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


# ------------------------------------------------------------------- training seeds resampled
def _case():
    """Two targets (30 binary scores, 20 continuous) for two systems, from a fixed generator."""
    rng = np.random.default_rng(11)
    a = [rng.integers(0, 2, 30).astype(float), rng.random(20)]
    b = [rng.integers(0, 2, 30).astype(float), rng.random(20)]
    return a, b


def test_single_seed_interval_is_the_one_before_seeds():
    """Expected values computed by the code before seeds were resampled (same case, same seed)."""
    a, b = _case()
    iv = paired_bootstrap(
        [mean_statistic(x) for x in a], [mean_statistic(x) for x in b], [30, 20], 500, seed=4
    )
    assert iv.delta == pytest.approx(0.1288674488203604, abs=1e-15)
    assert iv.low == pytest.approx(-0.03944216333226596, abs=1e-15)
    assert iv.high == pytest.approx(0.2783105043109104, abs=1e-15)
    assert iv.prob_a_better == 0.924
    # a one-seed list is the same system
    listed = paired_bootstrap(
        [[mean_statistic(x)] for x in a], [[mean_statistic(x)] for x in b], [30, 20], 500, seed=4
    )
    assert listed == iv


def test_identical_seeds_give_the_single_seed_interval():
    a, b = _case()
    single = paired_bootstrap(
        [mean_statistic(x) for x in a], [mean_statistic(x) for x in b], [30, 20], 300, seed=2
    )
    three = paired_bootstrap(
        [[mean_statistic(x)] * 3 for x in a],
        [[mean_statistic(x)] * 2 for x in b],
        [30, 20],
        300,
        seed=2,
    )
    assert three.delta == pytest.approx(single.delta)
    assert (three.low, three.high) == (pytest.approx(single.low), pytest.approx(single.high))


def test_disagreeing_seeds_widen_the_interval():
    """Same mean per target, but A's seeds disagree (±0.2): the interval must widen, and the
    point estimate (difference of seed means) stays."""
    a, b = _case()
    b_stats = [mean_statistic(x) for x in b]
    agree = [[mean_statistic(x)] * 3 for x in a]
    disagree = [[mean_statistic(x + d) for d in (-0.2, 0.0, 0.2)] for x in a]
    narrow = paired_bootstrap(agree, b_stats, [30, 20], 400, seed=5)
    wide = paired_bootstrap(disagree, b_stats, [30, 20], 400, seed=5)
    assert wide.delta == pytest.approx(narrow.delta)
    # expected ≈ 1.25×: the seed draws add an sd of about 0.2·√(2/3)/√3/√2 ≈ 0.067 to the
    # examples' ≈ 0.088 on the average over the two targets
    assert wide.high - wide.low > 1.15 * (narrow.high - narrow.low)
    assert wide.low < narrow.low and wide.high > narrow.high
    assert paired_bootstrap(disagree, b_stats, [30, 20], 400, seed=5) == wide  # seeded


def test_seeds_with_a_corpus_statistic():
    """Per-seed corpus statistics are rescored on the drawn examples of every resample."""
    scores = [np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])]
    seeds = [corpus_statistic(lambda idx, s=s: float(np.mean(s[idx]))) for s in scores]
    means = [mean_statistic(s) for s in scores]
    base = mean_statistic(np.zeros(6))
    corpus = paired_bootstrap([seeds], [base], [6], 200, seed=1)
    mean = paired_bootstrap([means], [base], [6], 200, seed=1)
    assert corpus == mean


def test_a_system_without_seeds_is_refused():
    s = mean_statistic([1.0])
    with pytest.raises(ValueError, match="at least one seed"):
        paired_bootstrap([[]], [s], [1])
