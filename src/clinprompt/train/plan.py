"""The target × setting × seed plan that adaptation and the baselines share.

Every target task is trained under the settings of ``adapt.modes``/``adapt.shots``, named as in
the evaluation layout: ``full`` (the whole training pool), ``k16``/``k64`` (exactly k distinct
examples) and ``k0`` (zero-shot: nothing is trained on the target), once per seed of
``adapt.seeds`` (zero-shot is deterministic: once, seed 0). The seed s sets the data order and
the initialisation (``train.seed + s``) and the k-shot draw (``data.seed + s``).

Budgets: full-data runs use ``adapt.train``; k-shot runs ``adapt.train`` then
``adapt.kshot_train``, except that with ``adapt.kshot_epochs`` set the steps are
``ceil(k × epochs / batch_size)`` (kshot_epochs wins over kshot_train's steps).

Names: in a bank a target's task is ``<target>`` for ``full`` and ``<target>.<setting>``
otherwise, with ``.s<seed>`` appended for seeds other than 0 (:func:`seeded`); run and evaluation
directories use ``<setting>`` / ``<setting>.s<seed>`` the same way.

:func:`plan_targets` yields one :class:`TargetPlan` per target (its data, its encoded dev set, its
:class:`SettingPlan` list and the plan of its learning-rate search), so MPT adaptation and the
PT/LoRA baselines see the same examples, budgets, seeds and zero-shot source.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from clinprompt.backbone import Backbone
from clinprompt.config import AdaptArgs, DataArgs, ExperimentArgs, TrainArgs
from clinprompt.data.collate import Encoded
from clinprompt.data.registry import get_dataset
from clinprompt.data.spec import Records
from clinprompt.tasks.spec import TaskSpec
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
    "PlanError",
    "SettingPlan",
    "TargetPlan",
    "adapt_settings",
    "k_of",
    "kshot_steps",
    "plan_target",
    "plan_targets",
    "seeded",
    "setting_name",
    "sort_settings",
    "task_name",
]

FULL = "full"


class PlanError(ValueError):
    """A plan that cannot be trained as configured (e.g. fewer training examples than k)."""


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


def seeded(name: str, seed: int = 0) -> str:
    """``name`` for seed 0, ``name.s<seed>`` for other seeds (task, run and evaluation names)."""
    return name if seed == 0 else f"{name}.s{seed}"


def task_name(target: str, setting: str, seed: int = 0) -> str:
    """Bank task name of a target's adaptation under ``setting`` and training ``seed``:
    ``<target>`` / ``<target>.<setting>`` for seed 0, then ``.s<seed>`` for other seeds."""
    return seeded(target if setting == FULL else f"{target}.{setting}", seed)


def _seeds(adapt: AdaptArgs, k: int | None) -> list[int]:
    """The seeds a setting is trained under: zero-shot once (seed 0), k-shot
    ``adapt.kshot_seeds`` (default ``adapt.seeds``), full data ``adapt.seeds``."""
    if k == 0:
        return [0]
    if k is not None and adapt.kshot_seeds is not None:
        return list(adapt.kshot_seeds)
    return list(adapt.seeds)


def kshot_steps(k: int, epochs: int, batch_size: int) -> int:
    """Optimizer steps that show k examples ``epochs`` times: ``ceil(k × epochs / batch_size)``."""
    return math.ceil(k * epochs / batch_size)


@dataclass(frozen=True)
class SettingPlan:
    """One setting of one target under one seed: what is trained, on which records, with which
    budget."""

    name: str  # full | k16 | k64 | k0
    k: int | None  # None: the whole training pool; 0: zero-shot
    records: Records  # training records: the pool, k drawn from data.seed + seed, or none (k0)
    train: TrainArgs  # the loop's budget (adapt.train, + kshot_train / kshot_epochs); its seed
    task: str  # the bank's task name
    pool_split: str  # the split the training pool came from
    seed: int = 0  # the training seed (0, 1, 2, ...): train.seed + seed, data.seed + seed

    @property
    def zero_shot(self) -> bool:
        """Nothing is trained on the target (``k0``)."""
        return self.k == 0

    @property
    def label(self) -> str:
        """``<setting>`` for seed 0, ``<setting>.s<seed>`` otherwise (run directories)."""
        return seeded(self.name, self.seed)

    def training(self, steps: int | None = None) -> dict[str, Any]:
        """What the run trained on: ``train_examples``, ``train_steps`` (``steps`` run, default
        the planned budget) and ``epochs`` (steps × batch size / examples)."""
        steps = 0 if self.zero_shot else (self.train.steps if steps is None else steps)
        n = len(self.records)
        return {
            "train_examples": n,
            "train_steps": steps,
            "epochs": round(steps * self.train.batch_size / n, 4) if n else 0.0,
        }

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
    """One target task: its data, its encoded dev set, its settings × seeds in training order,
    and the plan of its learning-rate search."""

    task: TaskData
    dev_set: list[Encoded]
    settings: list[SettingPlan]
    zero_shot_source: str | None  # the closest source (adapt.zero_shot: closest); None: the mean
    tokenizer: Any = field(repr=False)
    data: DataArgs = field(repr=False)
    # The search's runs: the full pool at seed 0 with adapt.train (the seed-0 full plan); they
    # may be paused at adapt.lr_search_steps (clinprompt.train.lr_search).
    lr_search: SettingPlan | None = None
    # The closest source whose factors MPT's trained settings start from (adapt.factor_init:
    # closest); None otherwise.
    init_source: str | None = None

    @property
    def name(self) -> str:
        return self.task.name

    def encode(self, records: Records) -> list[Encoded]:
        """``records`` of this target as token ids (the data limits of the run)."""
        return encode_records(records, self.task.spec, self.tokenizer, self.data)


def _setting_plan(
    args: ExperimentArgs, task: TaskData, setting: str, k: int | None, seed: int
) -> SettingPlan:
    """One setting of ``task`` under training ``seed`` (see the module docstring)."""
    a = args.adapt
    if k is None:
        records, train = task.train, args.stage_train(a.train)
    elif k == 0:
        records, train = [], args.stage_train(a.train, a.kshot_train)
    else:
        records = sample(task.train, k, args.data.seed + seed)
        if len(records) != k:
            raise PlanError(
                f"target {task.name!r} has {len(records)} training examples ({task.pool_split} "
                f"split, after data.max_train_examples); a {k}-shot run needs {k}: lower adapt.shots"
            )
        train = args.stage_train(a.train, a.kshot_train)
        if a.kshot_epochs is not None:
            train = dataclasses.replace(
                train, steps=kshot_steps(k, a.kshot_epochs, train.batch_size)
            )
    return SettingPlan(
        name=setting,
        k=k,
        records=records,
        train=dataclasses.replace(train, seed=train.seed + seed),
        task=task_name(task.name, setting, seed),
        pool_split=task.pool_split,
        seed=seed,
    )


def plan_targets(args: ExperimentArgs, backbone: Backbone) -> Iterator[TargetPlan]:
    """Each target of the run's suite with its settings × seeds, loaded one target at a time
    (:func:`plan_target`; the zero-shot source is chosen among the suite's sources).

    Raises:
        PlanError: a target with fewer training examples than a k-shot setting's k.
    """
    suite, sources, targets = suite_tasks(args.data)
    for target in targets:
        yield plan_target(
            args, backbone, target, suite.cap(target), lambda: [get_dataset(s) for s in sources]
        )


def plan_target(
    args: ExperimentArgs,
    backbone: Backbone,
    target: str,
    cap: int | None = None,
    sources: Callable[[], Sequence[TaskSpec]] | None = None,
) -> TargetPlan:
    """One target (a registered name or a dataset config path) with its settings × seeds.

    Settings come in training order (full, k-shot, zero-shot), each once per seed of
    ``adapt.seeds`` (zero-shot once, seed 0). The learning-rate search's plan is the full
    pool at seed 0 with ``adapt.train``: the seed-0 ``full`` plan, so that run can be the chosen
    candidate's (continued past ``adapt.lr_search_steps`` when the search paused it there).

    The zero-shot source is chosen only when the run has a ``k0`` setting and
    ``adapt.zero_shot`` is ``closest``: among ``sources()`` (the specs of the source tasks,
    named as the caller knows them: a suite's datasets, a bank's tasks), the one of the same task
    type whose instruction is closest to the target's
    (:func:`clinprompt.train.data.closest_source`); no target label is looked at. Without
    ``sources`` there is none (the caller has no source to start a zero-shot prompt from).
    The same source is the ``init_source`` of the trained settings when ``adapt.factor_init`` is
    ``closest`` (MPT's factors start from it).

    Args:
        cap: at most this many training examples (a suite's cap), on top of the run's limits.

    Raises:
        PlanError: a target with fewer training examples than a k-shot setting's k.
    """
    a = args.adapt
    task = load_task(target, args.data, cap, max_empty_fraction=a.max_empty_fraction)
    dev_set = encode_records(task.dev, task.spec, backbone.tokenizer, args.data)
    plans = [
        _setting_plan(args, task, setting, k, seed)
        for setting, k in adapt_settings(a)
        for seed in _seeds(a, k)
    ]
    search = _setting_plan(args, task, FULL, None, 0)
    wants_zero = a.zero_shot == "closest" and any(p.zero_shot for p in plans)
    wants_init = a.factor_init == "closest" and any(not p.zero_shot for p in plans)
    closest = None
    if (wants_zero or wants_init) and sources is not None:
        closest = closest_source(
            task.spec,
            list(sources()),
            backbone.model.get_input_embeddings().weight,
            backbone.tokenizer,
        )
    return TargetPlan(
        task,
        dev_set,
        plans,
        closest if wants_zero else None,
        backbone.tokenizer,
        args.data,
        search,
        init_source=closest if wants_init else None,
    )
