"""Deterministic batch plans: which examples each optimizer step sees.

An epoch's batches are a pure function of (seed, epoch), so a resumed run only needs the epoch
and the position in it to continue exactly where it stopped. Two levers:

* **batch by length** — examples are shuffled, cut into windows of ``window`` batches, each
  window is sorted by length and cut into batches, then the batch order is shuffled: padding
  (compute spent on nothing) nearly disappears while the data order stays random;
* **task sampling** — with ``groups`` (task ids) and per-task ``weights``, an epoch draws
  ``round(epoch_size * w_k)`` examples from task k (cycling through reshuffles of the task when
  it is small), so small tasks are not drowned by large ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["BatchPlan", "task_sampling_weights"]


def task_sampling_weights(
    sizes: list[int], temperature: float = 1.0, cap: int | None = None
) -> list[float]:
    """Sampling probability of each task: ``min(n_k, cap) ** (1 / temperature)``, normalised.

    ``temperature=1`` and no cap is proportional to size; larger temperatures flatten the mix
    towards uniform; a cap stops the largest tasks from dominating (T5's examples-proportional
    mixing with a cap).
    """
    if not sizes or any(n < 0 for n in sizes):
        raise ValueError(f"task sizes must be non-negative and non-empty; got {sizes}")
    capped = [min(n, cap) if cap else n for n in sizes]
    raw = [c ** (1.0 / temperature) if c > 0 else 0.0 for c in capped]
    total = sum(raw)
    if total == 0:
        raise ValueError("every task is empty; nothing to sample")
    return [r / total for r in raw]


def _generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919 + salt) % (2**63))


@dataclass
class BatchPlan:
    """Step batches of example indices, a pure function of ``(seed, epoch)``.

    Args:
        lengths: token length of each example (what padding depends on).
        batch_size: examples per optimizer step.
        seed: data-order seed.
        bucket: batch by length (see the module docstring).
        window: batches per length-sorted window.
        groups: task id of each example (for weighted task sampling).
        weights: sampling probability of each task id (``task_sampling_weights``).
        epoch_size: examples drawn per epoch with weights (default: all examples).
    """

    lengths: list[int]
    batch_size: int
    seed: int = 0
    bucket: bool = True
    window: int = 32
    groups: list[int] | None = None
    weights: list[float] | None = None
    epoch_size: int | None = None

    def __post_init__(self) -> None:
        if not self.lengths:
            raise ValueError("no training examples: the batch plan is empty")
        if self.weights is not None and self.groups is None:
            raise ValueError("task weights need the task id (groups) of each example")
        if self.groups is not None and len(self.groups) != len(self.lengths):
            raise ValueError(f"got {len(self.groups)} task ids for {len(self.lengths)} examples")

    def epoch(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch`` (the last one may be smaller)."""
        order = self._draw(epoch)  # (N,) example indices, shuffled
        size = self.batch_size
        if not self.bucket:
            return [order[i : i + size] for i in range(0, len(order), size)]
        batches: list[list[int]] = []
        span = size * self.window
        for start in range(0, len(order), span):
            # A stable sort keeps the shuffled order among equal lengths.
            chunk = sorted(order[start : start + span], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        perm = torch.randperm(len(batches), generator=_generator(self.seed, epoch, 1)).tolist()
        return [batches[i] for i in perm]

    def _draw(self, epoch: int) -> list[int]:
        gen = _generator(self.seed, epoch)
        n = len(self.lengths)
        if self.weights is None:
            return torch.randperm(n, generator=gen).tolist()
        members: dict[int, list[int]] = {}
        for i, g in enumerate(self.groups or []):
            members.setdefault(g, []).append(i)
        total = self.epoch_size or n
        drawn: list[int] = []
        for task, w in enumerate(self.weights):
            pool = members.get(task, [])
            count = round(total * w)
            if not pool or count == 0:
                continue
            # Whole reshuffles of the task, then a partial one: no example repeats before all appear.
            while count > 0:
                take = min(count, len(pool))
                drawn += [pool[i] for i in torch.randperm(len(pool), generator=gen)[:take].tolist()]
                count -= take
        return [drawn[i] for i in torch.randperm(len(drawn), generator=gen).tolist()]

    def padding_share(self, epoch: int = 0) -> float:
        """Share of padded positions in ``epoch``'s batches (0 = no padding computed)."""
        real = padded = 0
        for batch in self.epoch(epoch):
            lens = [self.lengths[i] for i in batch]
            real += sum(lens)
            padded += max(lens) * len(lens)
        return 1.0 - real / padded

    def signature(self) -> dict[str, int]:
        """What a checkpoint records to refuse resuming on different data."""
        return {
            "examples": len(self.lengths),
            "tokens": int(sum(self.lengths)),
            "batch_size": self.batch_size,
            "seed": self.seed,
        }
