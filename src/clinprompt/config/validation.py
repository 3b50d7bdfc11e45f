"""Validation: every problem of a config at once, as 'key: value — fix'."""

from __future__ import annotations

import dataclasses
from typing import Any

from clinprompt.config.args import STAGES, ExperimentArgs, TrainArgs
from clinprompt.config.build import build, to_dict

__all__ = ["validate"]

_STAGE_TRAIN_KEYS = ("teachers.train", "distill.train", "adapt.train", "adapt.kshot_train")


def validate(args: ExperimentArgs) -> list[str]:
    """Every problem with ``args``: 'key: value — why; fix'. Empty when valid."""
    out: list[str] = []

    def need(ok: bool, key: str, value: Any, fix: str) -> None:
        if not ok:
            out.append(f"{key}: {value!r} — {fix}")

    for section in (
        args.backbone,
        args.prompt,
        args.data,
        args.train,
        args.distill,
        args.adapt,
        args.baseline,
    ):
        prefix = _section_name(args, section)
        for f in dataclasses.fields(section):
            choices, value = f.metadata.get("choices"), getattr(section, f.name)
            if choices and value is not None:
                need(
                    value in choices,
                    f"{prefix}.{f.name}",
                    value,
                    f"expected one of {', '.join(choices)}",
                )
    need(
        bool(args.backbone.name),
        "backbone.name",
        args.backbone.name,
        "give a built-in name, model directory or hub id",
    )
    need(
        args.prompt.tokens >= 1,
        "prompt.tokens",
        args.prompt.tokens,
        "the prompt needs at least 1 token",
    )
    need(args.prompt.rank >= 1, "prompt.rank", args.prompt.rank, "the rank must be >= 1")
    need(
        0 <= args.data.dev_fraction < 1,
        "data.dev_fraction",
        args.data.dev_fraction,
        "use a share in [0, 1)",
    )
    need(
        args.data.max_input_tokens >= 1,
        "data.max_input_tokens",
        args.data.max_input_tokens,
        "must be >= 1",
    )
    need(
        args.data.max_target_tokens >= 1,
        "data.max_target_tokens",
        args.data.max_target_tokens,
        "must be >= 1",
    )
    for key in ("max_train_examples", "max_dev_examples", "max_test_examples"):
        value = getattr(args.data, key)
        need(
            value is None or value >= 1,
            f"data.{key}",
            value,
            "use a positive count or null for all",
        )
    need(
        args.adapt.max_empty_fraction is None or 0 <= args.adapt.max_empty_fraction < 1,
        "adapt.max_empty_fraction",
        args.adapt.max_empty_fraction,
        "use a share in [0, 1) (0: no empty answers in training) or null for the data's own",
    )
    top = _validate_train(args.train, "train")
    out += top
    for key in _STAGE_TRAIN_KEYS:
        section, name = key.split(".")
        extra = getattr(getattr(args, section), name)
        if not extra:
            continue
        problems: list[str] = []
        built = build(TrainArgs, {**to_dict(args.train), **extra}, key, problems)
        # Report only what the stage's overrides add to the problems of train.* itself.
        out += problems or [
            p for p in _validate_train(built, key) if "train." + p.split(".", 2)[-1] not in top
        ]
    need(
        set(args.stages) <= set(STAGES),
        "stages",
        args.stages,
        f"use stages among {', '.join(STAGES)}",
    )
    need(
        bool(args.distill.terms) and set(args.distill.terms) <= {"lm", "logits", "hidden"},
        "distill.terms",
        args.distill.terms,
        "use a non-empty subset of lm, logits, hidden",
    )
    need(
        args.distill.temperature > 0, "distill.temperature", args.distill.temperature, "must be > 0"
    )
    need(
        args.distill.task_temperature > 0,
        "distill.task_temperature",
        args.distill.task_temperature,
        "must be > 0 (1 = proportional)",
    )
    need(
        args.distill.task_cap is None or args.distill.task_cap >= 1,
        "distill.task_cap",
        args.distill.task_cap,
        "use a positive count or null",
    )
    need(
        args.distill.logits_weight >= 0 and args.distill.hidden_weight >= 0,
        "distill.logits_weight/hidden_weight",
        (args.distill.logits_weight, args.distill.hidden_weight),
        "weights must be >= 0",
    )
    need(
        args.distill.cache_top_k >= 1,
        "distill.cache_top_k",
        args.distill.cache_top_k,
        "keep at least 1 logit",
    )
    need(args.distill.lm_weight >= 0, "distill.lm_weight", args.distill.lm_weight, "must be >= 0")
    need(
        bool(args.distill.hidden_layers)
        and len(set(args.distill.hidden_layers)) == len(args.distill.hidden_layers),
        "distill.hidden_layers",
        args.distill.hidden_layers,
        "name at least one layer, each once, e.g. [-1] (the final layer) or [-4, -1]",
    )
    custom_hidden = args.distill.hidden_layers != [-1] or args.distill.hidden_positions != "target"
    need(
        not (args.distill.teacher_cache and "hidden" in args.distill.terms and custom_hidden),
        "distill.teacher_cache",
        args.distill.teacher_cache,
        "the cache keeps only the final layer's hidden states at target positions; with "
        f"hidden_layers={args.distill.hidden_layers} and hidden_positions="
        f"{args.distill.hidden_positions!r} set teacher_cache=false (the teacher then runs live)",
    )
    for section in ("distill", "adapt"):
        for key in ("lr_shared", "lr_factors"):
            value = getattr(getattr(args, section), key)
            need(value is None or value > 0, f"{section}.{key}", value, "must be > 0 or null")
    need(
        all(m > 0 for m in args.adapt.lr_search)
        and len(set(args.adapt.lr_search)) == len(args.adapt.lr_search),
        "adapt.lr_search",
        args.adapt.lr_search,
        "use distinct positive multipliers, e.g. [0.3, 1.0, 3.0] ([] for no search)",
    )
    need(
        args.adapt.lr_search_extend >= 0,
        "adapt.lr_search_extend",
        args.adapt.lr_search_extend,
        "use 0 (the grid only) or a positive number of extra candidates",
    )
    need(
        args.adapt.lr_search_steps is None or args.adapt.lr_search_steps >= 1,
        "adapt.lr_search_steps",
        args.adapt.lr_search_steps,
        "use a positive step count or null for adapt.train's budget",
    )
    search_train = args.stage_train(args.adapt.train)
    warm = search_train.warmup_steps
    judged_at = args.lr_search_judged_at
    need(
        judged_at is None or judged_at > warm,
        "adapt.lr_search_steps",
        args.adapt.lr_search_steps,
        f"candidates would be judged inside adapt.train's warm-up ({warm} of its "
        f"{search_train.steps} steps), where a rate has not reached its peak: use a step past "
        f"{warm}, or null to judge at the end",
    )
    need(
        bool(args.adapt.seeds)
        and all(s >= 0 for s in args.adapt.seeds)
        and len(set(args.adapt.seeds)) == len(args.adapt.seeds),
        "adapt.seeds",
        args.adapt.seeds,
        "use distinct non-negative seeds, e.g. [0, 1, 2]",
    )
    ks = args.adapt.kshot_seeds
    need(
        ks is None or (bool(ks) and all(s >= 0 for s in ks) and len(set(ks)) == len(ks)),
        "adapt.kshot_seeds",
        ks,
        "use distinct non-negative seeds, e.g. [0], or null for adapt.seeds",
    )
    need(
        args.adapt.kshot_epochs is None or args.adapt.kshot_epochs >= 1,
        "adapt.kshot_epochs",
        args.adapt.kshot_epochs,
        "use a positive number of epochs or null for adapt.kshot_train's steps",
    )
    need(
        args.baseline.pt_lr is None or args.baseline.pt_lr > 0,
        "baseline.pt_lr",
        args.baseline.pt_lr,
        "must be > 0 or null",
    )
    need(
        set(args.adapt.modes) <= {"full", "kshot", "zero"},
        "adapt.modes",
        args.adapt.modes,
        "use a subset of full, kshot, zero",
    )
    need(all(k >= 1 for k in args.adapt.shots), "adapt.shots", args.adapt.shots, "k must be >= 1")
    need(
        "kshot" not in args.adapt.modes or bool(args.adapt.shots),
        "adapt.shots",
        args.adapt.shots,
        "give at least one k for the kshot mode",
    )
    need(
        set(args.baseline.methods) <= {"pt", "lora"},
        "baseline.methods",
        args.baseline.methods,
        "use a subset of pt, lora",
    )
    need(
        args.baseline.lora_r >= 1,
        "baseline.lora_r",
        args.baseline.lora_r,
        "the LoRA rank must be >= 1",
    )
    need(args.baseline.lora_lr > 0, "baseline.lora_lr", args.baseline.lora_lr, "must be > 0")
    need(
        bool(args.baseline.lora_targets),
        "baseline.lora_targets",
        args.baseline.lora_targets,
        "name at least one module, e.g. [q_proj, v_proj]",
    )
    return out


def _validate_train(t: TrainArgs, key: str) -> list[str]:
    out: list[str] = []

    def need(ok: bool, name: str, value: Any, fix: str) -> None:
        if not ok:
            out.append(f"{key}.{name}: {value!r} — {fix}")

    need(t.steps >= 1, "steps", t.steps, "train at least 1 step")
    need(t.batch_size >= 1, "batch_size", t.batch_size, "must be >= 1")
    need(t.grad_accum >= 1, "grad_accum", t.grad_accum, "must be >= 1")
    need(
        t.batch_size % max(t.grad_accum, 1) == 0,
        "grad_accum",
        t.grad_accum,
        f"must divide batch_size={t.batch_size} (micro-batches of equal size)",
    )
    need(t.lr > 0, "lr", t.lr, "must be > 0")
    need(t.weight_decay >= 0, "weight_decay", t.weight_decay, "must be >= 0")
    need(0 <= t.warmup < 1, "warmup", t.warmup, "a share of steps in [0, 1)")
    need(0 <= t.min_lr_ratio <= 1, "min_lr_ratio", t.min_lr_ratio, "in [0, 1]")
    need(t.max_grad_norm >= 0, "max_grad_norm", t.max_grad_norm, "must be >= 0 (0: no clipping)")
    need(t.bucket_window >= 1, "bucket_window", t.bucket_window, "must be >= 1")
    for name in ("eval_every", "patience", "save_every", "log_every"):
        need(getattr(t, name) >= 0, name, getattr(t, name), "must be >= 0")
    need(t.eval_examples >= 1, "eval_examples", t.eval_examples, "must be >= 1")
    need(t.eval_batch_size >= 1, "eval_batch_size", t.eval_batch_size, "must be >= 1")
    return out


def _section_name(args: ExperimentArgs, section: Any) -> str:
    return next(f.name for f in dataclasses.fields(args) if getattr(args, f.name) is section)
