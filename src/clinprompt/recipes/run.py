"""A whole experiment — teachers → distill → adapt → baselines — into one run directory.

``clinprompt run EXPERIMENT.yaml [key=value ...]`` or :func:`run_experiment` from Python (the demo
calls it, then ``clinprompt evaluate``/``report`` on :attr:`RunResult.artifacts`).

Re-running skips finished stages (``RUN/<stage>/DONE.json``) and, inside a stage, finished tasks;
an interrupted training resumes from its checkpoint. A re-run with a config that differs in
anything but runtime keys (device, progress bar, logging, stages) is refused: results in one run
directory come from one config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinprompt.artifacts import write_json
from clinprompt.backbone import Backbone
from clinprompt.config import ExperimentArgs, save_config
from clinprompt.train.workspace import (
    ArtifactRef,
    RunLayout,
    is_main,
    load_run_backbone,
    wait,
)

__all__ = ["RunResult", "run_experiment"]


@dataclass
class RunResult:
    """Paths of every artifact of a run."""

    run_dir: Path
    config: Path
    teachers_bank: Path
    distilled_bank: Path
    bank: Path  # serving bank: sources' factors + adapted targets
    pt_bank: Path
    artifacts: list[ArtifactRef] = field(
        default_factory=list
    )  # (method, target, setting, seed) → path, task, how it was trained
    stages: dict[str, str] = field(default_factory=dict)  # stage → ran | skipped
    wall_s: float = 0.0

    def find(self, method: str, target: str, setting: str = "full", seed: int = 0) -> ArtifactRef:
        """The artifact of (method, target, setting) trained with ``seed``."""
        for ref in self.artifacts:
            if (ref.method, ref.target, ref.setting, ref.seed) == (method, target, setting, seed):
                return ref
        raise KeyError(
            f"no {method} artifact for {target} ({setting}, seed {seed}) in {self.run_dir}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **{
                k: str(getattr(self, k))
                for k in ("run_dir", "config", "teachers_bank", "distilled_bank", "bank", "pt_bank")
            },
            "artifacts": [r.to_dict() for r in self.artifacts],
            "stages": self.stages,
            "wall_s": round(self.wall_s, 1),
        }


def run_experiment(args: ExperimentArgs, backbone: Backbone | None = None) -> RunResult:
    """Run ``args.stages`` in order into ``args.run_dir``; finished stages are skipped.

    Raises:
        ConfigError: the run directory was started with a different config.
    """
    from clinprompt.recipes.adapt import adapt
    from clinprompt.recipes.baseline import train_baselines
    from clinprompt.recipes.distill import distill
    from clinprompt.recipes.teachers import train_teachers
    from clinprompt.train.data import suite_tasks

    # ---- setup: one config per run directory, one backbone for every stage
    t0 = time.perf_counter()
    suite_tasks(args.data)  # the suite and its dataset configs resolve, or fail, before any compute
    layout = RunLayout(args.run_dir)
    layout.check_config(args)
    if is_main():
        save_config(args, layout.config)
    wait()
    backbone = backbone or load_run_backbone(args.backbone)
    result = RunResult(
        layout.root,
        layout.config,
        layout.teachers_bank,
        layout.distill_bank,
        layout.bank,
        layout.pt_bank,
    )

    # ---- the stages
    stages = {
        "teachers": lambda: train_teachers(args, backbone=backbone),
        "distill": lambda: distill(args, backbone=backbone),
        "adapt": lambda: adapt(args, backbone=backbone),
        "baseline": lambda: train_baselines(args, backbone=backbone),
    }
    for stage in args.stages:
        if layout.done(stage) is None:
            out = stages[stage]()
            if stage == "teachers" and not out.complete:
                raise RuntimeError(f"teachers missing for {out.missing}")
            result.stages[stage] = "ran"
        else:
            result.stages[stage] = "skipped"
        done = layout.done(stage) or {}
        result.artifacts += [ArtifactRef(**r) for r in done.get("artifacts", [])]

    # ---- save the index of artifacts
    result.wall_s = time.perf_counter() - t0
    if is_main():
        write_json(layout.root / "run.json", result.to_dict())
    return result
