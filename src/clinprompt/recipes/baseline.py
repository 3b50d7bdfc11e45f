"""Baselines — single-task prompt tuning (PT) and LoRA on each target, same loop, data and budgets.

``clinprompt baseline CONFIG [key=value ...] [--method pt|lora]``

For every target and setting of ``adapt.modes``/``adapt.shots`` — the same plan as MPT's
(:func:`clinprompt.train.plan.plan_targets`), so examples and budgets match:

* **pt** — one (P, D) prompt, random or vocabulary init, trained with ``adapt.train`` (and
  ``adapt.kshot_train``); saved into ``RUN/baselines/pt/bank``. Zero-shot (``k0``) transfers a
  source's teacher prompt untrained: the mean of the teachers (``adapt.zero_shot: mean``) or the
  closest source's (``closest``).
* **lora** — PEFT ``LoraConfig(r, target_modules=[q_proj, v_proj], task CAUSAL_LM)`` trained with
  ``baseline.lora_lr`` and otherwise the same budgets; saved with PEFT's ``save_pretrained``
  (safetensors) plus ``clinprompt_task.json``. LoRA has no zero-shot row (it is the backbone).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

import torch

from clinprompt.artifacts import atomic_dir, write_json
from clinprompt.backbone import Backbone
from clinprompt.config import ExperimentArgs, save_config
from clinprompt.prompts import SoftPrompt
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.train import PromptObjective, train
from clinprompt.train.data import instruction_of, suite_tasks
from clinprompt.train.plan import plan_targets
from clinprompt.train.workspace import ArtifactRef, RunLayout, is_main, load_run_backbone, wait

__all__ = ["BaselineResult", "train_baselines"]


@dataclass
class BaselineResult:
    """One reference per (method, target, setting)."""

    artifacts: list[ArtifactRef] = field(default_factory=list)


def train_baselines(
    args: ExperimentArgs, methods: list[str] | None = None, backbone: Backbone | None = None
) -> BaselineResult:
    """Train the PT and/or LoRA baselines on every target and setting."""
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

    for target in plan_targets(args, backbone):
        spec = target.task.spec
        for setting in target.settings:
            train_set = target.encode(setting.records)
            entry = TaskEntry(
                name=setting.task,
                task_type=spec.task_type,
                kind="prompt",
                labels=list(spec.labels),
                instruction=instruction_of(spec),
                dataset=target.name,
                meta=setting.entry_meta("pt"),
                spec=spec.task_spec(),
            )

            # ---- prompt tuning
            if "pt" in methods and pt_bank is not None:
                result.artifacts.append(
                    ArtifactRef("pt", target.name, setting.name, str(layout.pt_bank), entry.name)
                )
                if entry.name not in pt_bank.tasks:
                    if setting.zero_shot:
                        weight, entry.meta["zero_shot"] = _teacher_transfer(
                            layout, sources, target.zero_shot_source, backbone
                        )
                    else:
                        prompt = SoftPrompt.create(
                            args.prompt.tokens,
                            model.get_input_embeddings().weight,
                            b.pt_init,
                            seed=setting.train.seed + zlib.crc32(target.name.encode()),
                        ).to(backbone.device)
                        run = train(
                            PromptObjective(model, prompt),
                            train_set,
                            setting.train,
                            layout.pt_run(target.name, setting.name),
                            pad_id=tokenizer.pad_token_id,
                            dev_set=target.dev_set,
                            desc=f"pt {entry.name}",
                        )
                        weight = prompt.weight.detach().cpu()
                        entry.meta.update(best_dev_loss=run.best_metric, steps=run.steps)
                    if is_main():
                        pt_bank.add_prompt(entry, weight)

            # ---- LoRA
            if "lora" in methods and not setting.zero_shot:
                adapter = layout.lora_adapter(target.name, setting.name)
                result.artifacts.append(
                    ArtifactRef("lora", target.name, setting.name, str(adapter))
                )
                if not (adapter / "adapter_config.json").exists():
                    _train_lora(
                        args,
                        backbone,
                        train_set,
                        target.dev_set,
                        replace(setting.train, lr=b.lora_lr),
                        layout,
                        target.name,
                        setting.name,
                        {**entry.to_dict(), "meta": {**entry.meta, "method": "lora"}},
                    )
    wait()
    if set(b.methods) <= set(methods):  # `--method lora` alone does not finish the stage
        layout.mark_done("baseline", {"artifacts": [r.to_dict() for r in result.artifacts]})
    return result


def _train_lora(args, backbone, train_set, dev_set, targs, layout, target, setting, entry) -> None:
    """Inject LoRA into the backbone, train it with the loop, save the adapter, remove LoRA."""
    from peft import LoraConfig, TaskType, get_peft_model

    b = args.baseline
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=b.lora_r,
        lora_alpha=b.lora_alpha,
        lora_dropout=b.lora_dropout,
        target_modules=list(b.lora_targets),
    )
    torch.manual_seed(targs.seed + zlib.crc32(f"lora:{target}".encode()))  # LoRA A's initialisation
    peft_model = get_peft_model(backbone.model, config)
    try:
        # The LoRA layers live inside backbone.model now; train them through the same objective.
        run = train(
            PromptObjective(backbone.model, None, train_model=True),
            train_set,
            targs,
            layout.lora_run(target, setting),
            pad_id=backbone.tokenizer.pad_token_id,
            dev_set=dev_set,
            desc=f"lora {target}.{setting}",
        )
        if is_main():
            with atomic_dir(layout.lora_adapter(target, setting)) as tmp:
                peft_model.save_pretrained(str(tmp), safe_serialization=True)
                write_json(
                    tmp / "clinprompt_task.json",
                    {
                        "task": entry,
                        "task_type": entry["task_type"],
                        "instruction": entry["instruction"],
                        "backbone": backbone.fingerprint.to_dict(),
                        "method": "lora",
                        "setting": setting,
                        "best_dev_loss": run.best_metric,
                        "steps": run.steps,
                    },
                )
        wait()
    finally:
        peft_model.unload()  # the backbone is left exactly as it was
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
