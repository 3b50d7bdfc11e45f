"""A run's workspace: where each stage writes, what it produced, and the process writing it.

Layout of a run directory (``output_dir``)::

    RUN/config.json                       the resolved experiment config
    RUN/run.json                          RunResult: every artifact's path
    RUN/teachers/bank/                    teachers: one single-prompt task per source
    RUN/teachers/runs/<source>/           loop output per teacher (checkpoint, metrics.jsonl, ...)
    RUN/distill/bank/                     P* + each source's factors
    RUN/distill/run/                      loop output; teacher_cache.safetensors (optional)
    RUN/bank/                             serving bank: the sources' factors + adapted targets
    RUN/adapt/runs/<target>/<setting>/    loop output per adaptation (seed 0)
    RUN/adapt/runs/<target>/<setting>.s<seed>/   ... of the other training seeds
    RUN/baselines/pt/bank/                prompt-tuning baseline prompts
    RUN/baselines/pt/runs/<target>/<setting>[.s<seed>]/
    RUN/baselines/lora/<target>/<setting>[.s<seed>]/adapter/   PEFT LoRA adapter (+ clinprompt_task.json)
    RUN/baselines/lora/<target>/<setting>[.s<seed>]/run/
    RUN/lr_search/<method>/<target>/search.json   the learning-rate search: candidates, choice
    RUN/lr_search/<method>/<target>/x<multiplier>/  loop output per candidate
    RUN/<stage>/DONE.json                 the stage finished (its summary); `run` skips it

Settings (``full``, ``k16``/``k64``, ``k0``), seeds and bank task names are those of
:mod:`clinprompt.train.plan`. Under ``accelerate launch`` every process trains; only the main
process writes artifacts.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState

from clinprompt.artifacts import read_json, write_json
from clinprompt.backbone import Backbone, load_backbone
from clinprompt.config import BackboneArgs, ConfigError, ExperimentArgs, to_dict
from clinprompt.train.plan import seeded

__all__ = [
    "RUNTIME_KEYS",
    "ArtifactRef",
    "RunLayout",
    "is_main",
    "load_run_backbone",
    "process_state",
    "wait",
]

# Keys that may change between a run and its resumption.
RUNTIME_KEYS = (
    "stages",
    "backbone.device",
    "backbone.dtype",  # like the device, a property of the machine; each artifact records its own
    "backbone.compile",
    "train.progress",
    "train.log_every",
    "data.data_root",
)


def process_state() -> PartialState:
    """This process's place in a data-parallel run (accelerate's shared state).

    Without CUDA (or with ``ACCELERATE_USE_CPU``), processes launched by ``accelerate launch`` /
    ``torchrun`` join a gloo group on the CPU; accelerate only does so when asked for the CPU.
    """
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in (
        "1",
        "true",
    )
    return PartialState(cpu=cpu)


def is_main() -> bool:
    """True in the process that writes artifacts (the only one without accelerate)."""
    return process_state().is_main_process


def wait() -> None:
    """Barrier: every process reaches this point (no-op in a single process)."""
    process_state().wait_for_everyone()


def load_run_backbone(args: BackboneArgs) -> Backbone:
    """The backbone on this process's device (its own GPU under ``accelerate launch``)."""
    state = process_state()
    device = args.device or (str(state.device) if state.num_processes > 1 else None)
    return load_backbone(args.name, device=device, dtype=args.dtype, compile=args.compile)


@dataclass(frozen=True)
class ArtifactRef:
    """One trained artifact to evaluate: ``clinprompt evaluate --artifact PATH [--task TASK]``.

    ``train`` says how it was trained: ``chosen_lr`` ({"lr": x}, or {"lr_shared": a,
    "lr_factors": b}), ``lr_candidates`` (each candidate's rates, "0.3" or "0.3/0.03" → its best
    dev loss, None when it diverged; {} without a search) — both absent for zero-shot, which
    trains nothing —, ``train_examples``, ``train_steps`` and ``epochs``. Evaluation writes it
    into metrics.json as ``training``, and ``seed`` as ``train_seed``.
    """

    method: str  # mpt | pt | lora
    target: str
    setting: str  # full | k16 | k64 | k0
    path: str  # a bank directory or a PEFT adapter directory
    task: str | None = None  # the bank's task name (None for an adapter)
    seed: int = 0  # the training seed
    train: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunLayout:
    """Paths of a run directory (see the module docstring)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def teachers_bank(self) -> Path:
        return self.root / "teachers" / "bank"

    def teacher_run(self, task: str) -> Path:
        return self.root / "teachers" / "runs" / task

    @property
    def distill_bank(self) -> Path:
        return self.root / "distill" / "bank"

    @property
    def distill_run(self) -> Path:
        return self.root / "distill" / "run"

    @property
    def teacher_cache(self) -> Path:
        return self.root / "distill" / "teacher_cache.safetensors"

    @property
    def bank(self) -> Path:
        return self.root / "bank"

    def adapt_run(self, target: str, setting: str, seed: int = 0) -> Path:
        return self.root / "adapt" / "runs" / target / seeded(setting, seed)

    @property
    def pt_bank(self) -> Path:
        return self.root / "baselines" / "pt" / "bank"

    def pt_run(self, target: str, setting: str, seed: int = 0) -> Path:
        return self.root / "baselines" / "pt" / "runs" / target / seeded(setting, seed)

    def lora_adapter(self, target: str, setting: str, seed: int = 0) -> Path:
        return self.root / "baselines" / "lora" / target / seeded(setting, seed) / "adapter"

    def lora_run(self, target: str, setting: str, seed: int = 0) -> Path:
        return self.root / "baselines" / "lora" / target / seeded(setting, seed) / "run"

    def lr_search(self, method: str, target: str) -> Path:
        """The learning-rate search of ``method`` on ``target``: search.json, one run per candidate."""
        return self.root / "lr_search" / method / target

    def stage_dir(self, stage: str) -> Path:
        return self.root / ("baselines" if stage == "baseline" else stage)

    def check_config(self, args: ExperimentArgs) -> None:
        """Refuse to resume this run directory with another config (listing every key that
        differs; :data:`RUNTIME_KEYS` may change between a run and its resumption)."""
        if not self.config.exists():
            return
        old, new = _flatten(read_json(self.config)), _flatten(to_dict(args))
        changed = sorted(
            k for k in set(old) | set(new) if k not in RUNTIME_KEYS and old.get(k) != new.get(k)
        )
        if changed:
            lines = [f"{k}: {old.get(k)!r} in the run, {new.get(k)!r} now" for k in changed]
            raise ConfigError(
                lines + [f"use a new output_dir, or the config saved in {self.config}"],
                f"the run directory {self.root}",
            )

    def done(self, stage: str) -> dict[str, Any] | None:
        """The stage's DONE.json summary, or None when it has not finished."""
        path = self.stage_dir(stage) / "DONE.json"
        return read_json(path) if path.exists() else None

    def mark_done(self, stage: str, summary: dict[str, Any]) -> None:
        """Record that ``stage`` finished (main process only)."""
        if is_main():
            write_json(self.stage_dir(stage) / "DONE.json", summary)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
