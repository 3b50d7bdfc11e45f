"""Where a figure came from: the command, the backbone, the budgets, the hardware, the wall time.

A run directory's ``provenance.json`` is written by the demo and the quality benchmark and shown
by ``clinprompt report`` under every table.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from clinprompt.artifacts import read_json, write_json
from clinprompt.eval.runs import PROVENANCE_FILE
from clinprompt.train.plan import kshot_steps

__all__ = [
    "backbone_description",
    "budgets",
    "command_line",
    "format_seconds",
    "hardware",
    "precision_record",
    "record_provenance",
]


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed (``sys.argv``), shell-quoted; the console script's path shortened."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("clinprompt", "__main__.py"):
        argv[0] = "clinprompt"
    return " ".join(shlex.quote(a) for a in argv)


def format_seconds(seconds: float) -> str:
    """``754.2`` → ``12 min 34 s``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def precision_record(backbone: Any) -> dict[str, Any]:
    """The dtype a backbone (or a bare model) computes in and why: ``DtypeChoice.to_dict()``.

    Soft prompts, factors, LoRA weights and optimizer states are fp32 whatever it says.
    """
    from clinprompt.precision import choice_of

    choice = getattr(backbone, "dtype_choice", None)
    if choice is None:
        choice = choice_of(getattr(backbone, "model", backbone))
    return choice.to_dict()


def backbone_description(backbone: Any) -> str:
    """The fingerprint's description plus the compute dtype and why (shown under every table)."""
    record = precision_record(backbone)
    return f"{backbone.fingerprint.describe()}; computes in {record['dtype']} ({record['reason']})"


def hardware() -> dict[str, Any]:
    """CPU model, its bf16 units, usable cores, torch threads, GPU, memory, load, versions."""
    import torch

    from clinprompt.precision import bf16_cpu_flags, cpu_model

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        # amx_bf16 / avx512_bf16: whether bf16 can be faster than fp32 on this CPU at all
        "bf16_cpu_flags": ", ".join(bf16_cpu_flags()) or "none",
        "cpu_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(terse=True),
    }
    if hasattr(os, "getloadavg"):
        # On a shared machine the load says whether the wall times were measured alone: a run
        # using both cores shows ~2; more means other work competed for them.
        info["load_average_1_5_15min"] = [round(x, 2) for x in os.getloadavg()]
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info


def budgets(
    cfg: Any, eval_limit: int | None = None, max_new_tokens: int | None = None
) -> dict[str, Any]:
    """The budgets of an ``ExperimentArgs`` run, flattened: steps per stage, batch, P, token limits."""
    kshot = "kshot" in cfg.adapt.modes
    stage = {
        "teachers": cfg.stage_train(cfg.teachers.train),
        "distill": cfg.stage_train(cfg.distill.train),
        "adapt": cfg.stage_train(cfg.adapt.train),
    }
    if kshot:
        stage["adapt_kshot"] = cfg.stage_train(cfg.adapt.train, cfg.adapt.kshot_train)
    out: dict[str, Any] = {}
    for name, t in stage.items():
        out[f"{name}_steps"] = t.steps
        out[f"{name}_batch"] = t.batch_size
    out.update(
        {
            "adapt_modes": list(cfg.adapt.modes),
            "baselines": f"{', '.join(cfg.baseline.methods)} with the adapt budgets (LoRA r={cfg.baseline.lora_r})",
            "prompt_tokens": cfg.prompt.tokens,
            "rank": cfg.prompt.rank,
            "max_input_tokens": cfg.data.max_input_tokens,
            "max_target_tokens": cfg.data.max_target_tokens,
            "max_train_examples": cfg.data.max_train_examples,
            "test_examples": eval_limit if eval_limit is not None else cfg.data.max_test_examples,
        }
    )
    if kshot:
        out["shots"] = list(cfg.adapt.shots)
        if cfg.adapt.kshot_epochs is not None:
            # adapt.kshot_epochs replaces kshot_train's steps: record what each k trains for.
            batch = stage["adapt_kshot"].batch_size
            out["adapt_kshot_epochs"] = cfg.adapt.kshot_epochs
            out["adapt_kshot_steps"] = {
                f"k{k}": kshot_steps(k, cfg.adapt.kshot_epochs, batch) for k in cfg.adapt.shots
            }
    if cfg.adapt.lr_search and cfg.lr_search_judged_at is not None:
        out["adapt_lr_search_judged_at"] = cfg.lr_search_judged_at
    if max_new_tokens is not None:
        out["max_new_tokens"] = max_new_tokens
    return out


def record_provenance(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``RUN/provenance.json`` (stage timings accumulate across resumes)."""
    path = Path(run_dir) / PROVENANCE_FILE
    data = read_json(path) if path.exists() else {}
    stages = dict(data.get("stages", {}))
    for name, entry in fields.pop("stages", {}).items():
        # A stage skipped on resume keeps the time it took when it ran.
        if not (entry.get("status") == "skipped" and stages.get(name, {}).get("status") == "ran"):
            stages[name] = entry
    data.update(fields)
    if stages:
        data["stages"] = stages
    data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(path, data)
    return data
