"""Stage 2 — distillation: the shared prompt P* and per-task rank-R factors from the teachers.

``clinprompt distill CONFIG [key=value ...]``

Task k's prompt is ``P* ⊙ (u_k v_k)``; P* starts at the mean of the teachers' prompts and the
factors at ones, so every task starts at P*. Training mixes all source tasks in each batch
(task sampling ∝ n_k^(1/T), optionally capped) and minimises
``λ_lm · LM + λ_logits · τ² KL(teacher ‖ student at τ) + λ_hidden · MSE(hidden states)``: LM and KL
over the target positions, the hidden term over ``distill.hidden_layers`` ×
``distill.hidden_positions`` (default: the final layer at the target positions). P* and the
factors train at one rate, or at two (``distill.lr_shared``, ``distill.lr_factors``) on the same
schedule. Reads top to bottom: refuse bad inputs (before any compute) → setup → train → save
the bank (P* + one factor task per source) in ``RUN/distill/bank``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from clinprompt.artifacts import atomic_dir
from clinprompt.backbone import Backbone
from clinprompt.config import ExperimentArgs, save_config, to_dict
from clinprompt.data.suite import Suite
from clinprompt.prompts import MultitaskPrompt
from clinprompt.prompts.bank import BankError, PromptBank, TaskEntry
from clinprompt.train import (
    BatchPlan,
    DistillObjective,
    TeacherCache,
    TrainResult,
    cache_key,
    task_sampling_weights,
    train,
)
from clinprompt.train.data import encode_records, instruction_of, load_task, suite_tasks
from clinprompt.train.lr_search import apply_rates, rates_of
from clinprompt.train.workspace import RunLayout, is_main, load_run_backbone, wait

__all__ = ["DistillError", "DistillResult", "check_distill_inputs", "distill"]


class DistillError(ValueError):
    """Distillation refused before any compute; the message says what to do."""


@dataclass
class DistillResult:
    """The distilled bank and the training run."""

    bank: Path
    train: TrainResult | None  # None when the stage had already finished


def check_distill_inputs(args: ExperimentArgs) -> tuple[Suite, list[str], PromptBank]:
    """Refuse a target that is also a source, or a source without a teacher.

    Returns:
        (suite, sources, teachers bank).
    """
    layout = RunLayout(args.run_dir)
    suite, sources, targets = suite_tasks(args.data)
    both = sorted(set(sources) & set(targets))
    if both:
        raise DistillError(
            f"{both} are both source and target tasks; a target must never be seen in distillation (fix data.sources/data.targets or the suite)"
        )
    if not (layout.teachers_bank / "bank.json").exists():
        raise DistillError(
            f"no teachers bank at {layout.teachers_bank}; run `clinprompt teachers` with the same config first"
        )
    teachers = PromptBank.load(layout.teachers_bank)
    missing = [s for s in sources if s not in teachers.tasks]
    if missing:
        raise DistillError(
            f"the teachers bank {layout.teachers_bank} has no teacher for {missing}; run `clinprompt teachers` (all shards) first"
        )
    if teachers.prompt_tokens != args.prompt.tokens:
        raise DistillError(
            f"the teachers have P={teachers.prompt_tokens} prompt tokens but prompt.tokens={args.prompt.tokens}; use the teachers' config"
        )
    return suite, sources, teachers


def distill(args: ExperimentArgs, backbone: Backbone | None = None) -> DistillResult:
    """Distil P* and the sources' factors from the teachers; write ``RUN/distill/bank``."""
    # ---- refuse before any compute
    layout = RunLayout(args.run_dir)
    if layout.done("distill"):
        return DistillResult(layout.distill_bank, None)
    suite, sources, teachers_bank = check_distill_inputs(args)
    backbone = backbone or load_run_backbone(args.backbone)
    try:
        teachers_bank.check_backbone(backbone.fingerprint)
    except BankError as err:
        raise DistillError(str(err)) from err

    # ---- setup: data with task ids, teachers (K, P, D), student initialised from them
    tokenizer, model, d = backbone.tokenizer, backbone.model, args.distill
    tasks = [load_task(name, args.data, suite.cap(name), suite) for name in sources]
    train_set = [
        x
        for k, t in enumerate(tasks)
        for x in encode_records(t.train, t.spec, tokenizer, args.data, task_id=k)
    ]
    dev_set = [
        x
        for k, t in enumerate(tasks)
        for x in encode_records(t.dev, t.spec, tokenizer, args.data, task_id=k)
    ]
    teachers = torch.stack([teachers_bank.task_prompt(s) for s in sources]).to(
        backbone.device
    )  # (K, P, D)
    student = MultitaskPrompt.create(
        teachers.mean(0).cpu(), len(sources), args.prompt.rank, d.factor_init, seed=args.train.seed
    ).to(backbone.device)
    rates = rates_of(d.lr_shared, d.lr_factors, args.stage_train(d.train).lr)
    targs, lr_groups = apply_rates(args.stage_train(d.train), rates)
    plan = BatchPlan(
        [len(x) for x in train_set],
        targs.batch_size,
        targs.seed,
        targs.bucket,
        targs.bucket_window,
        groups=[x.task_id for x in train_set],
        weights=task_sampling_weights(
            [len(t.train) for t in tasks], d.task_temperature, d.task_cap
        ),
    )
    cache = None
    if d.teacher_cache and {"logits", "hidden"} & set(d.terms):
        cache = TeacherCache.load(
            layout.teacher_cache, cache_key(teachers, train_set, d.cache_top_k)
        )
        if cache is None:
            cache = TeacherCache.build(
                model,
                teachers,
                train_set,
                tokenizer.pad_token_id,
                d.cache_top_k,
                targs.eval_batch_size,
            )
            if is_main():
                cache.save(layout.teacher_cache)
    objective = DistillObjective(
        model,
        student,
        teachers,
        d.terms,
        d.logits_weight,
        d.hidden_weight,
        d.temperature,
        cache,
        lm_weight=d.lm_weight,
        hidden_layers=d.hidden_layers,
        hidden_positions=d.hidden_positions,
    )
    if is_main():
        save_config(args, layout.distill_bank.parent / "config.json")

    # ---- train
    result = train(
        objective,
        train_set,
        targs,
        layout.distill_run,
        pad_id=tokenizer.pad_token_id,
        dev_set=dev_set,
        plan=plan,
        desc="distill",
        lr_groups=lr_groups,
    )

    # ---- save: P* and one factor task per source
    if is_main():
        with atomic_dir(layout.distill_bank) as tmp:
            bank = PromptBank.create(
                tmp,
                backbone.fingerprint,
                args.prompt.tokens,
                args.prompt.rank,
                shared=student.shared.detach(),
                config=to_dict(args),
            )
            entries = [
                TaskEntry(
                    name=t.name,
                    task_type=t.spec.task_type,
                    kind="factors",
                    labels=list(t.spec.labels),
                    instruction=instruction_of(t.spec),
                    dataset=t.name,
                    meta={"method": "mpt-source"},
                    spec=t.spec.task_spec(),
                )
                for t in tasks
            ]
            bank.add_multitask(student, entries)
    wait()
    layout.mark_done(
        "distill",
        {
            "bank": str(layout.distill_bank),
            "sources": sources,
            "best_dev_loss": result.best_metric,
            "lr": rates,
        },
    )
    return DistillResult(layout.distill_bank, result)
