"""Batch plans: deterministic, complete, length-bucketed, task-weighted."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from clinprompt.train import BatchPlan, task_sampling_weights


def _lengths(n=200, seed=0):
    rng = random.Random(seed)
    return [rng.randint(5, 300) for _ in range(n)]


def test_epochs_are_deterministic_and_complete():
    plan = BatchPlan(_lengths(), batch_size=8, seed=3)
    a, b = plan.epoch(0), BatchPlan(_lengths(), batch_size=8, seed=3).epoch(0)
    assert a == b and a != plan.epoch(1)
    assert sorted(i for batch in a for i in batch) == list(range(200))
    assert all(len(batch) == 8 for batch in a)


def test_bucketing_cuts_padding():
    lengths = _lengths()
    bucketed = BatchPlan(lengths, 8, seed=0, bucket=True, window=16).padding_share()
    plain = BatchPlan(lengths, 8, seed=0, bucket=False).padding_share()
    assert bucketed < 0.1 < plain


def test_task_weights():
    assert task_sampling_weights([100, 300]) == pytest.approx([0.25, 0.75])
    assert task_sampling_weights([100, 400], temperature=2.0) == pytest.approx([1 / 3, 2 / 3])
    assert task_sampling_weights([100, 10_000], cap=100) == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError):
        task_sampling_weights([0, 0])


def test_weighted_plan_draws_small_tasks_without_repeats_first():
    groups = [0] * 20 + [1] * 180
    plan = BatchPlan([10] * 200, 10, seed=0, groups=groups, weights=[0.5, 0.5], epoch_size=100)
    drawn = [i for batch in plan.epoch(0) for i in batch]
    counts = Counter(groups[i] for i in drawn)
    assert counts == {0: 50, 1: 50}
    small = [i for i in drawn if groups[i] == 0]
    assert len(set(small)) == 20  # every example of the small task appears (then repeats)
    assert len(set(i for i in drawn if groups[i] == 1)) == 50  # the large one: no repeats
