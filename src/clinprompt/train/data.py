"""Task data for training: the suite's tasks, their subsampled splits, encoded examples, k-shot draws.

Every draw is deterministic from ``data.seed`` and the records' ids (``hash_fraction``), so the
same config gives the same examples on any machine. Where a split is missing, the training pool
is the train split, else dev, else test (``TaskData.pool_split`` says which), and a missing dev
split is carved out of the pool (``data.dev_fraction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from clinprompt.config import DataArgs
from clinprompt.data.collate import Encoded, encode_example
from clinprompt.data.decontaminate import suite_target_text
from clinprompt.data.registry import get_dataset, load_splits
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import hash_fraction, seeded_split
from clinprompt.data.suite import Suite, load_suite
from clinprompt.tasks.base import get_task_type

__all__ = [
    "TaskData",
    "closest_source",
    "encode_records",
    "instruction_of",
    "load_task",
    "sample",
    "suite_tasks",
]


@dataclass
class TaskData:
    """One task's records for training: the training pool and dev, after subsampling."""

    spec: DatasetSpec
    train: Records
    dev: Records
    pool_split: str  # the split the training pool came from: train, dev or test

    @property
    def name(self) -> str:
        return self.spec.name


def sample(records: Records, n: int | None, seed: int) -> Records:
    """At most ``n`` records, chosen by the hash of (seed, id), kept in file order."""
    if n is None or len(records) <= n:
        return list(records)
    keep = set(
        sorted(range(len(records)), key=lambda i: hash_fraction(seed, records[i].get("id", i)))[:n]
    )
    return [r for i, r in enumerate(records) if i in keep]


def suite_tasks(data: DataArgs) -> tuple[Suite, list[str], list[str]]:
    """The suite and its source and target task names, restricted by ``data.sources``/``targets``.

    Raises:
        ValueError: a restriction names a task outside the suite's sources/targets.
    """
    suite = load_suite(data.suite)
    sources, targets = list(suite.sources), list(suite.targets)
    for key, chosen, allowed in (
        ("data.sources", data.sources, sources),
        ("data.targets", data.targets, targets),
    ):
        if chosen is not None:
            unknown = [t for t in chosen if t not in allowed]
            if unknown:
                raise ValueError(
                    f"{key}: {unknown} are not {key.split('.')[1]} of suite {suite.name!r} ({', '.join(allowed)})"
                )
    return suite, list(data.sources or sources), list(data.targets or targets)


def load_task(
    name: str, data: DataArgs, cap: int | None = None, suite: Suite | None = None
) -> TaskData:
    """Load task ``name``'s splits; subsample to ``data.max_train_examples`` (and ``cap``) and ``max_dev_examples``.

    With ``suite``, a *source* task loses every record that shares text with one of the suite's
    targets (see :mod:`clinprompt.data.decontaminate`), so no target text reaches source training.
    """
    spec = get_dataset(name)
    splits = load_splits(name, data.data_root)
    if suite is not None and name in suite.sources and suite.targets:
        text = suite_target_text(
            tuple(suite.targets), None if data.data_root is None else str(data.data_root)
        )
        splits = {split: text.drop_shared(records)[0] for split, records in splits.items()}
    pool_split = next((s for s in ("train", "dev", "test") if splits.get(s)), None)
    if pool_split is None:
        raise ValueError(
            f"task {name!r} has no records in any split ({', '.join(splits) or 'none'})"
        )
    pool = list(splits[pool_split])
    dev = list(splits.get("dev") or []) if pool_split == "train" else []
    if not dev and data.dev_fraction > 0 and len(pool) > 1:
        parts = seeded_split(
            pool, {"train": 1 - data.dev_fraction, "dev": data.dev_fraction}, seed=data.seed
        )
        if parts["train"] and parts["dev"]:
            pool, dev = parts["train"], parts["dev"]
    limits = [n for n in (data.max_train_examples, cap) if n is not None]
    train = sample(pool, min(limits) if limits else None, data.seed)
    return TaskData(spec, train, sample(dev, data.max_dev_examples, data.seed + 1), pool_split)


def instruction_of(spec: DatasetSpec) -> str:
    """The instruction the task is formatted with."""
    return get_task_type(spec.task_type).instruction(spec)


def encode_records(
    records: Records, spec: DatasetSpec, tokenizer: Any, data: DataArgs, task_id: int = 0
) -> list[Encoded]:
    """Records → token ids with labels on the target only (input truncated, instruction kept).

    One example per unit of each record (:meth:`~clinprompt.tasks.base.TaskType.units`: the
    record itself for most task types, one per ordered entity pair for pair-given RE), in record
    order; a record with no units gives none. Callers count records (k-shot, max_train_examples).
    """
    task = get_task_type(spec.task_type)
    return [
        encode_example(
            tokenizer,
            task.example(unit, spec),
            data.max_input_tokens,
            data.max_target_tokens,
            task_id,
        )
        for r in records
        for unit in task.units(r, spec)
    ]


@torch.no_grad()
def closest_source(
    target: DatasetSpec, sources: list[DatasetSpec], embeddings: torch.Tensor, tokenizer: Any
) -> str:
    """The source most similar to ``target`` without looking at any target label.

    Candidates are the sources of the same task type (all sources when none has it); similarity
    is the cosine between the mean input embeddings of the instructions (and label names).
    """
    same = [s for s in sources if s.task_type == target.task_type] or list(sources)
    if not same:
        raise ValueError("no source task to choose from")

    def vector(spec: DatasetSpec) -> torch.Tensor:
        text = instruction_of(spec) + " " + " ".join(spec.labels)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return embeddings[torch.tensor(ids, device=embeddings.device)].float().mean(0)  # (D,)

    t = vector(target)
    scores = [float(torch.nn.functional.cosine_similarity(t, vector(s), dim=0)) for s in same]
    return same[max(range(len(same)), key=lambda i: scores[i])].name
