"""Hand-made encoded examples for the training loop: a learnable toy task on the tiny model."""

from __future__ import annotations

import random

import pytest

from clinprompt.config import TrainArgs
from clinprompt.data.collate import Encoded
from clinprompt.prompts import IGNORE_INDEX


def make_examples(
    n: int, seed: int = 0, tasks: int = 1, vocab: tuple[int, int] = (1000, 3000)
) -> list[Encoded]:
    """``n`` examples: random input tokens (4-14 long), then a fixed 3-token target per task + EOS.

    The target depends only on the task, so a prompt can learn it: the loss must fall.
    """
    rng = random.Random(seed)
    targets = [
        [40 + 7 * t, 41 + 7 * t, 42 + 7 * t, 0] for t in range(tasks)
    ]  # 0 = EOS of the toy task
    out = []
    for i in range(n):
        task = i % tasks
        prompt = [rng.randrange(*vocab) for _ in range(rng.randint(4, 14))]
        target = targets[task]
        out.append(
            Encoded(prompt + target, [IGNORE_INDEX] * len(prompt) + target, len(prompt), task)
        )
    return out


def quick_args(**overrides) -> TrainArgs:
    """Loop settings for tests: few steps, no progress bar, no warm-up."""
    base = dict(
        steps=8,
        batch_size=4,
        lr=0.3,
        warmup=0.0,
        eval_every=0,
        eval_examples=8,
        eval_batch_size=8,
        log_every=1,
        progress=False,
        seed=0,
    )
    return TrainArgs(**{**base, **overrides})


@pytest.fixture
def toy():
    return make_examples(24, seed=1)


@pytest.fixture
def toy_dev():
    return make_examples(8, seed=2)


@pytest.fixture
def make():
    """The example factory, for tests that need other sizes or several tasks."""
    return make_examples


@pytest.fixture
def targs():
    """The TrainArgs factory (``targs(steps=4, grad_accum=2)``)."""
    return quick_args
