"""The target × setting plan that adaptation and the baselines share.

Every target task is trained under the settings of ``adapt.modes``/``adapt.shots``, named as in
the evaluation layout: ``full`` (the whole training pool), ``k16``/``k64`` (k examples drawn from
``data.seed``) and ``k0`` (zero-shot: nothing is trained on the target). Full-data runs use the
``adapt.train`` budget, k-shot runs ``adapt.train`` then ``adapt.kshot_train``. In a bank, a
target's task is named ``<target>`` for ``full`` and ``<target>.<setting>`` otherwise.

:func:`plan_targets` yields one :class:`TargetPlan` per target (its data, its encoded dev set and
its :class:`SettingPlan` list), so MPT adaptation and the PT/LoRA baselines see the same examples,
budgets and zero-shot source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from clinprompt.backbone import Backbone
from clinprompt.config import AdaptArgs, DataArgs, ExperimentArgs, TrainArgs
from clinprompt.data.collate import Encoded
from clinprompt.data.registry import get_dataset
from clinprompt.data.spec import Records
from clinprompt.train.data import (
    TaskData,
    closest_source,
    encode_records,
    load_task,
    sample,
    suite_tasks,
)

__all__ = [
    "FULL",
    "SettingPlan",
    "TargetPlan",
    "adapt_settings",
    "k_of",
    "plan_targets",
    "setting_name",
    "sort_settings",
    "task_name",
]

FULL = "full"


def setting_name(k: int | None) -> str:
    """``None`` → ``full``; ``16`` → ``k16``; ``0`` → ``k0``."""
    return FULL if k is None else f"k{int(k)}"


def k_of(setting: str) -> int | None:
    """Inverse of :func:`setting_name`.

    Raises:
        ValueError: a name that is neither ``full`` nor ``k<N>``.
    """
    if setting == FULL:
        return None
    if setting.startswith("k") and setting[1:].isdigit():
        return int(setting[1:])
    raise ValueError(f"unknown setting {setting!r}; expected full or k<N> (k0, k16, k64)")


def sort_settings(settings: set[str] | list[str]) -> list[str]:
    """Settings ordered by k: ``k0``, ``k8``, ``k16``, ``k64``, ..., ``full``."""
    return sorted(set(settings), key=lambda s: (k_of(s) is None, k_of(s) or 0))


def adapt_settings(adapt: AdaptArgs) -> list[tuple[str, int | None]]:
    """(setting, k) pairs of a run, in training order: full, then k16..., then k0."""
    ks: list[int | None] = [None] if "full" in adapt.modes else []
    ks += list(adapt.shots) if "kshot" in adapt.modes else []
    ks += [0] if "zero" in adapt.modes else []
    return [(setting_name(k), k) for k in ks]


def task_name(target: str, setting: str) -> str:
    """Bank task name of a target's adaptation under ``setting``."""
    return target if setting == FULL else f"{target}.{setting}"


@dataclass(frozen=True)
class SettingPlan:
    """One setting of one target: what is trained, on which records, with which budget."""

    name: str  # full | k16 | k64 | k0
    k: int | None  # None: the whole training pool; 0: zero-shot
    records: Records  # training records: the pool, k drawn from data.seed, or none (k0)
    train: TrainArgs  # the loop's budget: adapt.train (+ adapt.kshot_train for k-shot)
    task: str  # the bank's task name
    pool_split: str  # the split the training pool came from

    @property
    def zero_shot(self) -> bool:
        """Nothing is trained on the target (``k0``)."""
        return self.k == 0

    def entry_meta(self, method: str) -> dict[str, Any]:
        """The ``meta`` of this setting's bank entry: method, setting and, for k-shot, the shots."""
        meta: dict[str, Any] = {"method": method, "setting": self.name}
        if self.k:
            meta.update(
                shots=len(self.records),
                shots_split=self.pool_split,
                shot_ids=[r.get("id") for r in self.records],
            )
        return meta


@dataclass
class TargetPlan:
    """One target task: its data, its encoded dev set, and its settings in training order."""

    task: TaskData
    dev_set: list[Encoded]
    settings: list[SettingPlan]
    zero_shot_source: str | None  # the closest source (adapt.zero_shot: closest); None: the mean
    tokenizer: Any = field(repr=False)
    data: DataArgs = field(repr=False)

    @property
    def name(self) -> str:
        return self.task.name

    def encode(self, records: Records) -> list[Encoded]:
        """``records`` of this target as token ids (the data limits of the run)."""
        return encode_records(records, self.task.spec, self.tokenizer, self.data)


def plan_targets(args: ExperimentArgs, backbone: Backbone) -> Iterator[TargetPlan]:
    """Each target of the run's suite with its settings, loaded one target at a time.

    The zero-shot source is chosen only when the run has a ``k0`` setting and
    ``adapt.zero_shot`` is ``closest``: the source of the same task type whose instruction is
    closest to the target's (:func:`clinprompt.train.data.closest_source`); no target label is
    looked at.
    """
    suite, sources, targets = suite_tasks(args.data)
    a = args.adapt
    settings = adapt_settings(a)
    for target in targets:
        task = load_task(target, args.data, suite.cap(target))
        dev_set = encode_records(task.dev, task.spec, backbone.tokenizer, args.data)
        plans = [
            SettingPlan(
                name=setting,
                k=k,
                records=task.train if k is None else sample(task.train, k, args.data.seed),
                train=args.stage_train(a.train)
                if k is None
                else args.stage_train(a.train, a.kshot_train),
                task=task_name(target, setting),
                pool_split=task.pool_split,
            )
            for setting, k in settings
        ]
        closest = None
        if a.zero_shot == "closest" and any(p.zero_shot for p in plans):
            closest = closest_source(
                task.spec,
                [get_dataset(s) for s in sources],
                backbone.model.get_input_embeddings().weight,
                backbone.tokenizer,
            )
        yield TargetPlan(task, dev_set, plans, closest, backbone.tokenizer, args.data)
