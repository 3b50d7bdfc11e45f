"""Task data for training: the suite's tasks, their subsampled splits, encoded examples, k-shot draws.

Every draw is deterministic from ``data.seed`` and the records' ids (``hash_fraction``), so the
same config gives the same examples on any machine. Where a split is missing, the training pool
is the train split, else dev, else test (``TaskData.pool_split`` says which), and a missing dev
split is carved out of the pool (``data.dev_fraction``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

from clinprompt.config import DataArgs
from clinprompt.data.collate import Encoded, encode_example
from clinprompt.data.decontaminate import suite_target_text
from clinprompt.data.registry import is_config_path, load_splits, resolve_dataset
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import hash_fraction, seeded_split
from clinprompt.data.suite import Suite, load_suite
from clinprompt.tasks.base import TaskType, get_task_type

__all__ = [
    "TaskData",
    "cap_empty",
    "closest_source",
    "encode_records",
    "instruction_of",
    "load_task",
    "sample",
    "suite_tasks",
]

log = logging.getLogger(__name__)
# (task, dev_fraction, seed) whose carved dev split was announced: once per process, not per stage
_DEV_CARVED: set[tuple[str, float, int]] = set()


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
    """At most ``n`` records, chosen by the hash of (seed, id), kept in file order.

    Units of one record share its id: the n-th record with an id already seen is keyed by
    (id, n), so a record's units are drawn independently of each other.
    """
    if n is None or len(records) <= n:
        return list(records)
    seen: dict[Any, int] = {}
    keys = []
    for i, record in enumerate(records):
        rid = record.get("id", i)
        nth = seen.get(rid, 0)
        seen[rid] = nth + 1
        keys.append(rid if nth == 0 else (rid, nth))
    keep = set(sorted(range(len(records)), key=lambda i: hash_fraction(seed, keys[i]))[:n])
    return [r for i, r in enumerate(records) if i in keep]


def cap_empty(
    units: Records, task_type: TaskType, spec: DatasetSpec, fraction: float, seed: int
) -> Records:
    """``units`` with at most ``fraction`` of them answering none (seeded, in file order).

    Every unit with a non-empty answer is kept; of the empty ones, the hash of (seed, id) keeps
    as many as leave their share at ``fraction`` or below. A pool with no non-empty unit is
    returned as is (there is nothing to rebalance towards), and so is a task type whose
    answers cannot be empty.
    """
    empty = [task_type.answers_none(u, spec) for u in units]
    full = len(units) - sum(empty)
    if not any(empty) or full == 0:
        return list(units)
    allowed = math.floor(fraction * full / (1 - fraction) + 1e-9)
    kept_empty = sample([u for u, e in zip(units, empty, strict=True) if e], allowed, seed)
    keep = {id(u) for u in kept_empty}
    return [u for u, e in zip(units, empty, strict=True) if not e or id(u) in keep]


def suite_tasks(data: DataArgs) -> tuple[Suite, list[str], list[str]]:
    """The suite and its source and target task names, restricted by ``data.sources``/``targets``.

    Every dataset config is resolved here (the suite's, relative to the suite file, and those of
    the overrides, relative to the working directory), so a bad one fails before any compute.
    An override entry is a task of the suite, or the path of a dataset config: a config outside
    the suite joins it in that role (the returned suite includes it, so source training is
    decontaminated against a user's target too).

    Raises:
        ValueError: a restriction names a registered task outside the suite's sources/targets,
            or a config that is the suite's task of the other role; ``RecordError`` (a
            ValueError): a dataset config's problems, as ``config.yaml:LINE: field 'x': ...``.
        SuiteError: the suite or one of its dataset configs is invalid.
        UnknownDatasetError: a config path that does not exist.
    """
    suite = load_suite(data.suite)
    chosen: dict[str, list[str]] = {}
    for role, entries in (("sources", data.sources), ("targets", data.targets)):
        own = suite.sources if role == "sources" else suite.targets
        other = suite.targets if role == "sources" else suite.sources
        if entries is None:
            chosen[role] = list(own)
            continue
        names, unknown = [], []
        for entry in entries:
            name = resolve_dataset(entry).name if is_config_path(entry) else entry
            if name in own:
                names.append(name)
            elif not is_config_path(entry):
                unknown.append(entry)
            elif name in other:
                raise ValueError(
                    f"data.{role}: {entry} ({name}) is one of the suite's "
                    f"{'targets' if role == 'sources' else 'sources'}; a target must never be "
                    "seen in source training"
                )
            else:  # the user's own dataset joins the suite in this role
                names.append(name)
        if unknown:
            raise ValueError(
                f"data.{role}: {unknown} are not {role} of suite {suite.name!r} ({', '.join(own)}); "
                "a dataset config path (.yaml) is accepted too"
            )
        chosen[role] = list(dict.fromkeys(names))
    both = [n for n in chosen["sources"] if n in chosen["targets"]]
    if both:
        raise ValueError(
            f"data.sources and data.targets both name {both}; a target must never be seen in "
            "source training"
        )
    extra_sources = tuple(n for n in chosen["sources"] if n not in suite.sources)
    extra_targets = tuple(n for n in chosen["targets"] if n not in suite.targets)
    if extra_sources or extra_targets:
        suite = dataclasses.replace(
            suite, sources=suite.sources + extra_sources, targets=suite.targets + extra_targets
        )
    return suite, chosen["sources"], chosen["targets"]


def load_task(
    name: str,
    data: DataArgs,
    cap: int | None = None,
    suite: Suite | None = None,
    max_empty_fraction: float | None = None,
) -> TaskData:
    """Load task ``name``'s splits; subsample to ``data.max_train_examples`` (and ``cap``) and ``max_dev_examples``.

    ``name`` is a registered name or a dataset config path
    (:func:`clinprompt.data.registry.resolve_dataset`). With ``suite``, a *source* task loses
    every record that shares text with one of the suite's targets (see
    :mod:`clinprompt.data.decontaminate`), so no target text reaches source training. A task
    without a dev split gets a seeded ``data.dev_fraction`` of its pool as dev; this is said once
    per process (a log warning naming the task, the fraction and the seed). With
    ``max_empty_fraction`` (a target's ``adapt.max_empty_fraction``), at most that share of the
    training pool answers none (:func:`cap_empty`); dev keeps the data's own share.
    """
    spec = resolve_dataset(name)
    name = spec.name
    splits = load_splits(spec, data.data_root)
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
            if (name, data.dev_fraction, data.seed) not in _DEV_CARVED:
                _DEV_CARVED.add((name, data.dev_fraction, data.seed))
                log.warning(
                    "%s has no separate dev split: dev is a seeded %s of its %s split (%d of %d "
                    "records; data.dev_fraction=%g, data.seed=%d)",
                    name,
                    f"{data.dev_fraction * 100:g}%",
                    pool_split,
                    len(dev),
                    len(pool) + len(dev),
                    data.dev_fraction,
                    data.seed,
                )
    # Training counts what the model answers: a record's units (one per ordered entity pair
    # for pair-given RE; the record itself otherwise), so a record without units (an RE sentence
    # with fewer than two entities) teaches nothing and is not drawn, and max_train_examples and
    # k-shot's k count units.
    task_type = get_task_type(spec.task_type)
    pool = [u for r in pool for u in task_type.units(r, spec)]
    dev = [u for r in dev for u in task_type.units(r, spec)]
    if max_empty_fraction is not None:
        pool = cap_empty(pool, task_type, spec, max_empty_fraction, data.seed)
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
