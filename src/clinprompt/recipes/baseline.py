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
"""

from __future__ import annotations

import contextlib
import dataclasses
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clinprompt.artifacts import atomic_dir, read_json, write_json
from clinprompt.backbone import Backbone
from clinprompt.config import BaselineArgs, ExperimentArgs, save_config
from clinprompt.prompts import SoftPrompt
from clinprompt.prompts.bank import PromptBank, TaskEntry
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

__all__ = ["BaselineResult", "train_baselines"]


@dataclass
class BaselineResult:
    """One reference per (method, target, setting, seed)."""

    artifacts: list[ArtifactRef] = field(default_factory=list)


def train_baselines(
    args: ExperimentArgs, methods: list[str] | None = None, backbone: Backbone | None = None
) -> BaselineResult:
    """Train the PT and/or LoRA baselines on every target, setting and seed."""
    # ---- setup
    layout = RunLayout(args.run_dir)
    methods = methods or args.baseline.methods
    _, sources, _ = suite_tasks(args.data)
    backbone = backbone or load_run_backbone(args.backbone)
    tokenizer, model, b = backbone.tokenizer, backbone.model, args.baseline
    if is_main():
        save_config(args, layout.stage_dir("baseline") / "config.json")
        if "pt" in methods and not (layout.pt_bank / "bank.json").exists():
            PromptBank.create(layout.pt_bank, backbone.fingerprint, args.prompt.tokens)
    wait()
    pt_bank = (
        PromptBank.load(layout.pt_bank, expect=backbone.fingerprint) if "pt" in methods else None
    )
    result = BaselineResult()

    def fit_pt(
        target: TargetPlan, rates: Rates, setting: SettingPlan, run_dir: Path
    ) -> tuple[TrainResult, SoftPrompt]:
        """Train a fresh PT prompt for ``setting`` at ``rates`` (the search's and every seed's)."""
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
        )
        return run, prompt

    def fit_lora(
        target: TargetPlan,
        rates: Rates,
        setting: SettingPlan,
        run_dir: Path,
        save: tuple[Path, dict[str, Any], LrChoice] | None = None,
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

    choices: dict[tuple[str, str], LrChoice] = {}

    def choice_of(method: str, target: TargetPlan) -> LrChoice:
        """The rates of ``method`` on ``target``: searched once, when a setting first trains."""
        key = (method, target.name)
        if key not in choices:
            fit = (
                (lambda r, s, d: fit_pt(target, r, s, d)[0])
                if method == "pt"
                else (lambda r, s, d: fit_lora(target, r, s, d))
            )
            choices[key] = choose_rates(method, target, args, layout, fit)
        return choices[key]

    for target in plan_targets(args, backbone):
        spec = target.task.spec
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
            if "pt" in methods and pt_bank is not None:
                if entry.name in pt_bank.tasks:
                    record = (pt_bank.entry(entry.name).meta or {}).get("train", {})
                else:
                    if setting.zero_shot:
                        weight, entry.meta["zero_shot"] = _teacher_transfer(
                            layout, sources, target.zero_shot_source, backbone
                        )
                        record = training_record(None, setting)
                    else:
                        choice = choice_of("pt", target)
                        run_dir = layout.pt_run(target.name, setting.name, setting.seed)
                        reuse_search_run(choice, target, setting, run_dir)
                        run, prompt = fit_pt(target, choice.rates, setting, run_dir)
                        weight = prompt.weight.detach().cpu()
                        entry.meta.update(best_dev_loss=run.best_metric, steps=run.steps)
                        record = training_record(choice, setting, run.steps)
                    entry.meta["train"] = record
                    if is_main():
                        pt_bank.add_prompt(entry, weight)
                result.artifacts.append(
                    ArtifactRef(
                        "pt",
                        target.name,
                        setting.name,
                        str(layout.pt_bank),
                        entry.name,
                        setting.seed,
                        dict(record),
                    )
                )

            # ---- LoRA
            if "lora" in methods and not setting.zero_shot:
                adapter = layout.lora_adapter(target.name, setting.name, setting.seed)
                if not (adapter / "adapter_config.json").exists():
                    choice = choice_of("lora", target)
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
                    fit_lora(target, choice.rates, setting, run_dir, (adapter, sidecar, choice))
                record = read_json(adapter / "clinprompt_task.json").get("train", {})
                result.artifacts.append(
                    ArtifactRef(
                        "lora", target.name, setting.name, str(adapter), None, setting.seed, record
                    )
                )
    wait()
    if set(b.methods) <= set(methods):  # `--method lora` alone does not finish the stage
        layout.mark_done("baseline", {"artifacts": [r.to_dict() for r in result.artifacts]})
    return result


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
