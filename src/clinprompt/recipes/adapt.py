"""Stage 3 — adaptation: P* and fresh factors fitted to each unseen target task.

``clinprompt adapt CONFIG [key=value ...]``

For every target, setting (``full`` data, ``k16``/``k64`` examples, ``k0`` zero-shot) and seed of
``adapt.seeds`` the target's prompt is ``P* ⊙ (u v)`` with u, v starting at the mean of the
source factors, the closest source's, or ones (``adapt.factor_init``); training updates u, v and — with ``adapt.train_shared`` — its own copy
of P*, at one rate or two (``adapt.lr_shared`` for P*, ``adapt.lr_factors`` for u, v), chosen per
target by the learning-rate search on the dev split when ``adapt.lr_search`` asks for one
(:mod:`clinprompt.train.lr_search`; the same search as the baselines'). Zero-shot trains nothing:
P* with the mean source factors, or the factors of the closest source of the same task type.
Every result is added to the serving bank ``RUN/bank`` (which also holds the sources' factors):
``<target>`` for full data, ``<target>.<setting>`` otherwise, ``.s<seed>`` appended for seeds
other than 0; its meta records ``seed`` and ``train`` (chosen rates, search candidates, examples,
steps, epochs). Targets, settings, seeds, examples and budgets come from
:func:`clinprompt.train.plan.plan_targets`, as for the baselines.

One target is adapted by :func:`adapt_target`: this stage loops over the suite's targets with
it, and ``clinprompt adapt CONFIG --bank BANK --dataset my.yaml``
(:func:`clinprompt.recipes.target_run.adapt_bank`) adapts an existing bank to one new target
with it, without teachers or distillation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clinprompt.backbone import Backbone
from clinprompt.config import ExperimentArgs, save_config
from clinprompt.prompts import MultitaskPrompt
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.recipes.dev_score import cached, judge_candidate, load_best
from clinprompt.train import PromptObjective, TrainResult, train
from clinprompt.train.data import instruction_of, suite_tasks
from clinprompt.train.lr_search import (
    LrChoice,
    Rates,
    apply_rates,
    choose_rates,
    reuse_search_run,
    training_record,
)
from clinprompt.train.plan import SettingPlan, TargetPlan, plan_targets
from clinprompt.train.workspace import ArtifactRef, RunLayout, is_main, load_run_backbone, wait

__all__ = ["AdaptError", "AdaptResult", "adapt", "adapt_target", "source_tasks"]


class AdaptError(ValueError):
    """Adaptation refused before any compute."""


@dataclass
class AdaptResult:
    """The serving bank and one reference per (target, setting)."""

    bank: Path
    artifacts: list[ArtifactRef] = field(default_factory=list)


def adapt(args: ExperimentArgs, backbone: Backbone | None = None) -> AdaptResult:
    """Adapt the distilled prompt to every target and setting; add each to ``RUN/bank``."""
    # ---- setup: refuse, then the distilled bank and the serving bank
    layout = RunLayout(args.run_dir)
    _, sources, targets = suite_tasks(args.data)
    if set(sources) & set(targets):
        raise AdaptError(f"{sorted(set(sources) & set(targets))} are both source and target tasks")
    if not (layout.distill_bank / "bank.json").exists():
        raise AdaptError(
            f"no distilled bank at {layout.distill_bank}; run `clinprompt distill` with the same config first"
        )
    backbone = backbone or load_run_backbone(args.backbone)
    distilled = PromptBank.load(layout.distill_bank, expect=backbone.fingerprint)
    source_prompt = distilled.multitask_prompt(sources)  # P* (P, D), U (K, P, R), V (K, R, D)
    if is_main():
        save_config(args, layout.root / "adapt" / "config.json")
        if not (layout.bank / "bank.json").exists():
            bank = PromptBank.create(
                layout.bank,
                backbone.fingerprint,
                distilled.prompt_tokens,
                distilled.rank,
                shared=distilled.shared(),
            )
            for name in sources:
                bank.add_from(distilled, name)
    wait()
    bank = PromptBank.load(layout.bank, expect=backbone.fingerprint)
    result = AdaptResult(layout.bank)
    for target in plan_targets(args, backbone):
        result.artifacts += adapt_target(
            target, bank, source_prompt, sources, args, backbone, layout
        )
    wait()
    layout.mark_done(
        "adapt", {"bank": str(layout.bank), "artifacts": [r.to_dict() for r in result.artifacts]}
    )
    return result


def adapt_target(
    target: TargetPlan,
    bank: PromptBank,
    source_prompt: MultitaskPrompt,
    sources: list[str],
    args: ExperimentArgs,
    backbone: Backbone,
    layout: RunLayout,
) -> list[ArtifactRef]:
    """Adapt P* to one target under each of its settings and seeds; add each to ``bank``.

    The suite's stage and :func:`clinprompt.recipes.target_run.adapt_bank` both adapt a target here. A setting whose task is
    already in ``bank`` is kept as it is (a re-run resumes). Loop output goes to
    ``RUN/adapt/runs/<target>/<setting>[.s<seed>]``, the learning-rate search to
    ``RUN/lr_search/mpt/<target>``.

    Args:
        target: the target's plan (:func:`clinprompt.train.plan.plan_target`).
        bank: where the target's tasks are added (it holds P*, the one ``source_prompt`` has).
        source_prompt: P* (P, D) and the sources' factors U (K, P, R), V (K, R, D).
        sources: the bank's names of the K sources (``target.zero_shot_source`` is one of them).
        args: the run's config (``adapt.*`` and its budgets).
        backbone: the loaded backbone.
        layout: the run directory.

    Returns:
        One reference per setting and seed, in training order.
    """
    tokenizer, model, a = backbone.tokenizer, backbone.model, args.adapt
    rank = source_prompt.cols.shape[-1]
    u0, v0, start = _start_factors(source_prompt, sources, a.factor_init, target)

    def fit(
        rates: Rates, setting: SettingPlan, run_dir: Path, pause_at: int | None = None
    ) -> tuple[TrainResult, MultitaskPrompt]:
        """Train a fresh target prompt for ``setting`` at ``rates`` (the search's and every
        seed's), paused after ``pause_at`` steps when set (a search candidate)."""
        prompt = (
            _target_prompt(source_prompt.shared, u0, v0, rank)
            .trainable(shared=a.train_shared)
            .to(backbone.device)
        )
        targs, groups = apply_rates(setting.train, rates)
        result = train(
            PromptObjective(model, prompt),
            target.encode(setting.records),
            targs,
            run_dir,
            pad_id=tokenizer.pad_token_id,
            dev_set=target.dev_set,
            desc=f"adapt {setting.task}",
            lr_groups=groups,
            pause_at=pause_at,
        )
        return result, prompt

    @cached
    def judge(run_dir: Path) -> float:
        """A search candidate's dev score: its P* ⊙ (u vᵀ) at its best dev loss."""
        prompt = (
            _target_prompt(source_prompt.shared, u0, v0, rank)
            .trainable(shared=a.train_shared)
            .to(backbone.device)
        )
        load_best(PromptObjective(model, prompt), run_dir)
        return judge_candidate(backbone, target, args, run_dir, "mpt", prompt.task_prompt(0))

    spec = target.task.spec
    refs: list[ArtifactRef] = []
    choice: LrChoice | None = None  # searched once per target, when a setting trains
    for setting in target.settings:
        if setting.task in bank.tasks:
            meta = bank.entry(setting.task).meta or {}
            refs.append(_ref(bank.path, target.name, setting, meta.get("train", {})))
            continue
        entry = TaskEntry(
            name=setting.task,
            task_type=spec.task_type,
            kind="factors",
            labels=list(spec.labels),
            instruction=instruction_of(spec),
            dataset=target.name,
            meta={**setting.entry_meta("mpt"), "seed": setting.seed},
            spec=spec.task_spec(),
        )

        # ---- zero-shot: no training
        if setting.zero_shot:
            u, v, how = _source_factors(source_prompt, sources, target.zero_shot_source)
            entry.meta.update(zero_shot=how, train=training_record(None, setting))
            if is_main():
                bank.add_factors(entry, u, v)
            refs.append(_ref(bank.path, target.name, setting, entry.meta["train"]))
            continue

        # ---- train u, v (and P*) from the chosen start, at the target's chosen rates
        if choice is None:
            choice = choose_rates(
                "mpt", target, args, layout, lambda r, s, d, at: fit(r, s, d, at)[0], judge
            )
        run_dir = layout.adapt_run(target.name, setting.name, setting.seed)
        reuse_search_run(choice, target, setting, run_dir)
        run, prompt = fit(choice.rates, setting, run_dir)
        entry.meta.update(
            start=start,
            best_dev_loss=run.best_metric,
            steps=run.steps,
            train=training_record(choice, setting, run.steps),
        )
        if is_main():
            shared = prompt.shared.detach().cpu() if a.train_shared else None
            bank.add_factors(
                entry,
                prompt.cols[0].detach().cpu(),
                prompt.rows[0].detach().cpu(),
                shared=shared,
            )
        refs.append(_ref(bank.path, target.name, setting, entry.meta["train"]))
    return refs


def source_tasks(bank: PromptBank) -> list[str]:
    """The bank's source tasks: factors on its shared P* that are no adapted target (their meta
    names no setting), as distillation wrote them."""
    return [
        name
        for name, e in bank.tasks.items()
        if e.kind == "factors" and not e.own_shared and "setting" not in (e.meta or {})
    ]


def _ref(bank: Path, target: str, setting: SettingPlan, train: dict[str, Any]) -> ArtifactRef:
    """The bank's task of ``setting``, with how it was trained."""
    return ArtifactRef(
        "mpt", target, setting.name, str(bank), setting.task, setting.seed, dict(train)
    )


def _target_prompt(
    shared: torch.Tensor, u0: torch.Tensor | None, v0: torch.Tensor | None, rank: int
) -> MultitaskPrompt:
    """A one-task prompt on (a copy of) P*, with factors u0 (P, R), v0 (R, D) or ones."""
    if u0 is None or v0 is None:
        return MultitaskPrompt.create(shared.detach(), 1, rank, "ones")
    return MultitaskPrompt(shared.detach(), u0.detach().unsqueeze(0), v0.detach().unsqueeze(0))


def _start_factors(
    source_prompt: MultitaskPrompt, sources: list[str], factor_init: str, target: TargetPlan
) -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
    """Where trained settings' factors u (P, R), v (R, D) start (``adapt.factor_init``), and
    in words: the sources' mean, the closest source's (``target.init_source``), or (None, None)
    for ones."""
    if factor_init == "mean":
        return _source_factors(source_prompt, sources, None)
    if factor_init == "closest":
        if target.init_source is None or target.init_source not in sources:
            raise AdaptError(
                f"adapt.factor_init=closest: no source to start {target.name!r} from "
                f"(closest: {target.init_source!r}; sources: {sources}); "
                "use adapt.factor_init=mean or ones"
            )
        return _source_factors(source_prompt, sources, target.init_source)
    return None, None, "ones"


def _source_factors(
    source_prompt: MultitaskPrompt, sources: list[str], closest: str | None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Factors u (P, R), v (R, D) taken from the sources, and in words: their mean, or those of
    the source ``closest`` (a zero-shot target's prompt; a trained target's start)."""
    if closest is None:
        return (
            source_prompt.cols.mean(0).detach(),
            source_prompt.rows.mean(0).detach(),
            "mean of source factors",
        )
    k = sources.index(closest)
    return (
        source_prompt.cols[k].detach(),
        source_prompt.rows[k].detach(),
        f"factors of the closest source {closest}",
    )
