"""Stage 3 — adaptation: P* and fresh factors fitted to each unseen target task.

``clinprompt adapt CONFIG [key=value ...]``

For every target and setting (``full`` data, ``k16``/``k64`` examples drawn from the seed, ``k0``
zero-shot) the target's prompt is ``P* ⊙ (u v)`` with u, v starting at the mean of the source
factors (or ones); training updates u, v and — with ``adapt.train_shared`` — its own copy of P*.
Zero-shot trains nothing: P* with the mean source factors, or the factors of the closest source
of the same task type. Every result is added to the serving bank ``RUN/bank`` (which also holds
the sources' factors): ``<target>`` for full data, ``<target>.<setting>`` otherwise. Targets,
settings, examples and budgets come from :func:`clinprompt.train.plan.plan_targets`, as for the
baselines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from clinprompt.backbone import Backbone
from clinprompt.config import ExperimentArgs, save_config
from clinprompt.prompts import MultitaskPrompt
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.train import PromptObjective, train
from clinprompt.train.data import instruction_of, suite_tasks
from clinprompt.train.plan import plan_targets
from clinprompt.train.workspace import ArtifactRef, RunLayout, is_main, load_run_backbone, wait

__all__ = ["AdaptError", "AdaptResult", "adapt"]


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
    tokenizer, model, a = backbone.tokenizer, backbone.model, args.adapt
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
        spec = target.task.spec
        for setting in target.settings:
            result.artifacts.append(
                ArtifactRef("mpt", target.name, setting.name, str(layout.bank), setting.task)
            )
            if setting.task in bank.tasks:
                continue
            entry = TaskEntry(
                name=setting.task,
                task_type=spec.task_type,
                kind="factors",
                labels=list(spec.labels),
                instruction=instruction_of(spec),
                dataset=target.name,
                meta=setting.entry_meta("mpt"),
                spec=spec.task_spec(),
            )

            # ---- zero-shot: no training
            if setting.zero_shot:
                u, v, how = _zero_shot(source_prompt, sources, target.zero_shot_source)
                entry.meta["zero_shot"] = how
                if is_main():
                    bank.add_factors(entry, u, v)
                continue

            # ---- train u, v (and P*) from the chosen start
            u0, v0 = (
                (source_prompt.cols.mean(0), source_prompt.rows.mean(0))
                if a.factor_init == "mean"
                else (None, None)
            )
            prompt = (
                _target_prompt(source_prompt.shared, u0, v0, args.prompt.rank)
                .trainable(shared=a.train_shared)
                .to(backbone.device)
            )
            run = train(
                PromptObjective(model, prompt),
                target.encode(setting.records),
                setting.train,
                layout.adapt_run(target.name, setting.name),
                pad_id=tokenizer.pad_token_id,
                dev_set=target.dev_set,
                desc=f"adapt {setting.task}",
            )
            entry.meta.update(best_dev_loss=run.best_metric, steps=run.steps)
            if is_main():
                shared = prompt.shared.detach().cpu() if a.train_shared else None
                bank.add_factors(
                    entry,
                    prompt.cols[0].detach().cpu(),
                    prompt.rows[0].detach().cpu(),
                    shared=shared,
                )
    wait()
    layout.mark_done(
        "adapt", {"bank": str(layout.bank), "artifacts": [r.to_dict() for r in result.artifacts]}
    )
    return result


def _target_prompt(
    shared: torch.Tensor, u0: torch.Tensor | None, v0: torch.Tensor | None, rank: int
) -> MultitaskPrompt:
    """A one-task prompt on (a copy of) P*, with factors u0 (P, R), v0 (R, D) or ones."""
    if u0 is None or v0 is None:
        return MultitaskPrompt.create(shared.detach(), 1, rank, "ones")
    return MultitaskPrompt(shared.detach(), u0.detach().unsqueeze(0), v0.detach().unsqueeze(0))


def _zero_shot(
    source_prompt: MultitaskPrompt, sources: list[str], closest: str | None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Factors u (P, R), v (R, D) of a zero-shot target: the sources' mean, or the closest's."""
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
