"""Baselines — single-task prompt tuning (PT) and LoRA on each target, same loop, data and budgets.

``clinprompt baseline CONFIG [key=value ...] [--method pt|lora]``

For every target, setting of ``adapt.modes``/``adapt.shots`` and seed of ``adapt.seeds`` — the
same plan as MPT's (:func:`clinprompt.train.plan.plan_targets`), so examples, budgets and seeds
match — and at the rate the same dev search as MPT's picks per target
(:mod:`clinprompt.train.lr_search`: ``adapt.lr_search`` times the method's base rate):

* **pt** — one (P, D) prompt, initialised as the teachers are (``baseline.pt_init``: vocab by
  default; random, or text), trained at ``baseline.pt_lr`` (default adapt's ``train.lr``) with
  ``adapt.train`` (and the k-shot budget); saved into ``RUN/baselines/pt/bank``. Zero-shot
  (``k0``) transfers a source's teacher prompt untrained: the mean of the teachers
  (``adapt.zero_shot: mean``) or the closest source's (``closest``).
* **lora** — PEFT ``LoraConfig(r, target_modules=[q_proj, v_proj], task CAUSAL_LM)`` trained at
  ``baseline.lora_lr`` and otherwise the same budgets; saved with PEFT's ``save_pretrained``
  (safetensors) plus ``clinprompt_task.json``. LoRA has no zero-shot row (it is the backbone).

Bank entries and sidecars record ``seed`` and ``train`` (chosen rates, search candidates,
examples, steps, epochs), as the ArtifactRefs do.

One target is trained by :func:`baseline_target`: this stage loops over the suite's targets with
it, and ``clinprompt baseline CONFIG --dataset my.yaml``
(:func:`clinprompt.recipes.target_run.train_baselines_on`) trains one user target with it, on
the plan MPT's adaptation makes there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clinprompt.artifacts import atomic_dir, read_json, write_json
from clinprompt.backbone import Backbone
from clinprompt.config import BaselineArgs, ExperimentArgs, save_config
from clinprompt.prompts import SoftPrompt
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

__all__ = ["BaselineResult", "baseline_target", "open_pt_bank", "train_baselines"]

# zero_shot(target) → the untrained PT prompt (P, D) of its k0 setting and how it was made
ZeroShotPrompt = Callable[[TargetPlan], tuple[torch.Tensor, str]]


@dataclass
class BaselineResult:
    """One reference per (method, target, setting, seed)."""

    artifacts: list[ArtifactRef] = field(default_factory=list)
    run_dir: Path | None = None
    notes: list[str] = field(default_factory=list)  # what was not trained, and why


def train_baselines(
    args: ExperimentArgs, methods: list[str] | None = None, backbone: Backbone | None = None
) -> BaselineResult:
    """Train the PT and/or LoRA baselines on every target, setting and seed."""
    # ---- setup
    layout = RunLayout(args.run_dir)
    methods = methods or args.baseline.methods
    _, sources, _ = suite_tasks(args.data)
    backbone = backbone or load_run_backbone(args.backbone)
    if is_main():
        save_config(args, layout.stage_dir("baseline") / "config.json")
    pt_bank = open_pt_bank(layout, args, backbone, methods)
    result = BaselineResult(run_dir=layout.root)

    def teacher(target: TargetPlan) -> tuple[torch.Tensor, str]:
        return _teacher_transfer(layout, sources, target.zero_shot_source, backbone)

    for target in plan_targets(args, backbone):
        result.artifacts += baseline_target(
            target, methods, args, backbone, layout, pt_bank, teacher
        )
    wait()
    if set(args.baseline.methods) <= set(methods):  # `--method lora` alone does not finish it
        layout.mark_done("baseline", {"artifacts": [r.to_dict() for r in result.artifacts]})
    return result


def open_pt_bank(
    layout: RunLayout, args: ExperimentArgs, backbone: Backbone, methods: list[str]
) -> PromptBank | None:
    """The run's PT bank (created when missing), when ``pt`` is one of ``methods``."""
    if is_main() and "pt" in methods and not (layout.pt_bank / "bank.json").exists():
        PromptBank.create(layout.pt_bank, backbone.fingerprint, args.prompt.tokens)
    wait()
    if "pt" not in methods:
        return None
    return PromptBank.load(layout.pt_bank, expect=backbone.fingerprint)


def baseline_target(
    target: TargetPlan,
    methods: list[str],
    args: ExperimentArgs,
    backbone: Backbone,
    layout: RunLayout,
    pt_bank: PromptBank | None,
    zero_shot: ZeroShotPrompt | None,
) -> list[ArtifactRef]:
    """Train PT and/or LoRA on one target under each of its settings and seeds.

    The suite's stage and :func:`clinprompt.recipes.target_run.train_baselines_on` both train a target here. Finished work is
    kept (a PT task already in ``pt_bank``, a saved LoRA adapter).

    Args:
        target: the target's plan (:func:`clinprompt.train.plan.plan_target`).
        methods: pt and/or lora.
        args: the run's config (``baseline.*``, ``adapt.*`` budgets).
        backbone: the loaded backbone (LoRA layers are injected and removed again).
        layout: the run directory (PT runs, LoRA adapters, learning-rate searches).
        pt_bank: where PT prompts go (``RUN/baselines/pt/bank``); None without PT.
        zero_shot: the untrained PT prompt of a ``k0`` setting; None: PT has no zero-shot row.

    Returns:
        One reference per method, setting and seed, in training order.
    """
    tokenizer, model, b = backbone.tokenizer, backbone.model, args.baseline

    def fit_pt(
        rates: Rates, setting: SettingPlan, run_dir: Path, pause_at: int | None = None
    ) -> tuple[TrainResult, SoftPrompt]:
        """Train a fresh PT prompt for ``setting`` at ``rates`` (the search's and every seed's),
        paused after ``pause_at`` steps when set (a search candidate)."""
        text = args.prompt.init_text or instruction_of(target.task.spec)
        prompt = SoftPrompt.create(
            args.prompt.tokens,
            model.get_input_embeddings().weight,
            b.pt_init,
            text_ids=tokenizer(text, add_special_tokens=False)["input_ids"],
            seed=setting.train.seed + zlib.crc32(target.name.encode()),
        ).to(backbone.device)
        targs, groups = apply_rates(setting.train, rates)
        run = train(
            PromptObjective(model, prompt),
            target.encode(setting.records),
            targs,
            run_dir,
            pad_id=tokenizer.pad_token_id,
            dev_set=target.dev_set,
            desc=f"pt {setting.task}",
            lr_groups=groups,
            pause_at=pause_at,
        )
        return run, prompt

    def fit_lora(
        rates: Rates,
        setting: SettingPlan,
        run_dir: Path,
        save: tuple[Path, dict[str, Any], LrChoice] | None = None,
        pause_at: int | None = None,
    ) -> TrainResult:
        """Train fresh LoRA layers for ``setting`` at ``rates``; with ``save`` (adapter
        directory, sidecar, the rates' choice), save the adapter and its
        ``clinprompt_task.json`` (the sidecar plus the run's dev loss, steps and ``train``)."""
        with _lora_injected(backbone, b, setting.train.seed, target.name) as peft_model:
            targs, groups = apply_rates(setting.train, rates)
            # The LoRA layers live inside backbone.model now; train them through the same objective.
            run = train(
                PromptObjective(backbone.model, None, train_model=True),
                target.encode(setting.records),
                targs,
                run_dir,
                pad_id=tokenizer.pad_token_id,
                dev_set=target.dev_set,
                desc=f"lora {setting.task}",
                lr_groups=groups,
                pause_at=pause_at,
            )
            if save is not None and is_main():
                adapter, sidecar, choice = save
                sidecar = {
                    **sidecar,
                    "best_dev_loss": run.best_metric,
                    "steps": run.steps,
                    "train": training_record(choice, setting, run.steps),
                }
                with atomic_dir(adapter) as tmp:
                    peft_model.save_pretrained(str(tmp), safe_serialization=True)
                    write_json(tmp / "clinprompt_task.json", sidecar)
            wait()
        return run

    @cached
    def judge_pt(run_dir: Path) -> float:
        """A PT search candidate's dev score: its prompt at its best dev loss."""
        prompt = SoftPrompt.create(
            args.prompt.tokens, model.get_input_embeddings().weight, "random"
        ).to(backbone.device)
        load_best(PromptObjective(model, prompt), run_dir)
        return judge_candidate(backbone, target, args, run_dir, "pt", prompt.weight)

    @cached
    def judge_lora(run_dir: Path) -> float:
        """A LoRA search candidate's dev score: its layers at its best dev loss, injected."""
        with _lora_injected(backbone, b, 0, target.name):
            load_best(PromptObjective(backbone.model, None, train_model=True), run_dir)
            return judge_candidate(backbone, target, args, run_dir, "lora", None)

    choices: dict[str, LrChoice] = {}

    def choice_of(method: str) -> LrChoice:
        """The rates of ``method`` on this target: searched once, when a setting first trains."""
        if method not in choices:
            fit = (
                (lambda r, s, d, at: fit_pt(r, s, d, at)[0])
                if method == "pt"
                else (lambda r, s, d, at: fit_lora(r, s, d, pause_at=at))
            )
            judge = judge_pt if method == "pt" else judge_lora
            choices[method] = choose_rates(method, target, args, layout, fit, judge)
        return choices[method]

    spec = target.task.spec
    refs: list[ArtifactRef] = []
    for setting in target.settings:
        entry = TaskEntry(
            name=setting.task,
            task_type=spec.task_type,
            kind="prompt",
            labels=list(spec.labels),
            instruction=instruction_of(spec),
            dataset=target.name,
            meta={**setting.entry_meta("pt"), "seed": setting.seed},
            spec=spec.task_spec(),
        )

        # ---- prompt tuning
        if (
            "pt" in methods
            and pt_bank is not None
            and (not setting.zero_shot or zero_shot is not None)
        ):
            if entry.name in pt_bank.tasks:
                record = (pt_bank.entry(entry.name).meta or {}).get("train", {})
            else:
                if setting.zero_shot:
                    assert zero_shot is not None
                    weight, entry.meta["zero_shot"] = zero_shot(target)
                    record = training_record(None, setting)
                else:
                    choice = choice_of("pt")
                    run_dir = layout.pt_run(target.name, setting.name, setting.seed)
                    reuse_search_run(choice, target, setting, run_dir)
                    run, prompt = fit_pt(choice.rates, setting, run_dir)
                    weight = prompt.weight.detach().cpu()
                    entry.meta.update(best_dev_loss=run.best_metric, steps=run.steps)
                    record = training_record(choice, setting, run.steps)
                entry.meta["train"] = record
                if is_main():
                    pt_bank.add_prompt(entry, weight)
            refs.append(
                ArtifactRef(
                    "pt",
                    target.name,
                    setting.name,
                    str(pt_bank.path),
                    entry.name,
                    setting.seed,
                    dict(record),
                )
            )

        # ---- LoRA
        if "lora" in methods and not setting.zero_shot:
            adapter = layout.lora_adapter(target.name, setting.name, setting.seed)
            if not (adapter / "adapter_config.json").exists():
                choice = choice_of("lora")
                run_dir = layout.lora_run(target.name, setting.name, setting.seed)
                reuse_search_run(choice, target, setting, run_dir)
                lora_entry = dataclasses.replace(
                    entry, meta={**setting.entry_meta("lora"), "seed": setting.seed}
                )
                sidecar = {
                    "task": lora_entry.to_dict(),
                    "task_type": spec.task_type,
                    "instruction": entry.instruction,
                    "backbone": backbone.fingerprint.to_dict(),
                    "method": "lora",
                    "setting": setting.name,
                    "seed": setting.seed,
                }
                fit_lora(choice.rates, setting, run_dir, (adapter, sidecar, choice))
            record = read_json(adapter / "clinprompt_task.json").get("train", {})
            refs.append(
                ArtifactRef(
                    "lora", target.name, setting.name, str(adapter), None, setting.seed, record
                )
            )
    return refs


@contextlib.contextmanager
def _lora_injected(backbone: Backbone, b: BaselineArgs, seed: int, target: str) -> Iterator[Any]:
    """Fresh LoRA layers in the backbone (PEFT) while the block runs; removed afterwards, so
    the backbone is left exactly as it was."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=b.lora_r,
        lora_alpha=b.lora_alpha,
        lora_dropout=b.lora_dropout,
        target_modules=list(b.lora_targets),
    )
    torch.manual_seed(seed + zlib.crc32(f"lora:{target}".encode()))  # LoRA A's initialisation
    peft_model = get_peft_model(backbone.model, config)
    try:
        yield peft_model
    finally:
        peft_model.unload()
        backbone.model.eval()


def _teacher_transfer(
    layout: RunLayout, sources: list[str], closest: str | None, backbone: Backbone
) -> tuple[torch.Tensor, str]:
    """Zero-shot PT: the mean teacher prompt (P, D), or the closest source's teacher, untrained."""
    teachers = PromptBank.load(layout.teachers_bank, expect=backbone.fingerprint)
    if closest is None:
        mean = torch.stack([teachers.task_prompt(s) for s in sources]).mean(0)
        return mean, "mean of teacher prompts"
    return teachers.task_prompt(closest), f"teacher of the closest source {closest}"
