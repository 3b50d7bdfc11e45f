"""The run directory of one user target, and the artifacts a run directory records.

``clinprompt adapt CONFIG --bank BANK --dataset my.yaml`` and ``clinprompt baseline CONFIG
--dataset my.yaml`` train one target into a run directory (``--run-dir``, default
``runs/<dataset name>``) laid out as a suite run's (:class:`~clinprompt.train.workspace.RunLayout`):
its ``config.json`` is the profile with ``data.targets`` naming the target (a dataset config's
absolute path, or a registered name), so MPT and both baselines plan the same records and
budgets, and a later command with another config is refused.

Artifacts: a suite run records them in ``RUN/run.json`` and each stage's ``RUN/<stage>/DONE.json``;
the one-target commands merge theirs into ``RUN/artifacts.json``, one entry per (method, target,
setting, seed). :func:`recorded_artifacts` reads all three, so ``clinprompt evaluate --run-dir RUN
--all`` works on either kind of run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinprompt.artifacts import read_json, write_json
from clinprompt.config import ExperimentArgs
from clinprompt.data.registry import is_config_path, resolve_dataset
from clinprompt.data.spec import DatasetSpec
from clinprompt.recipes.run import _check_same_config
from clinprompt.train.data import suite_tasks
from clinprompt.train.workspace import ArtifactRef, RunLayout

__all__ = [
    "ARTIFACTS_FILE",
    "TargetRun",
    "record_artifacts",
    "record_step",
    "recorded_artifacts",
    "target_run",
]

ARTIFACTS_FILE = "artifacts.json"


@dataclass(frozen=True)
class TargetRun:
    """One user target's run: its dataset, the run's config, and where it writes."""

    spec: DatasetSpec
    args: ExperimentArgs  # output_dir: the run directory; data.targets: [target]
    target: str  # a dataset config's absolute path, or a registered name

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.args.run_dir)


def target_run(
    args: ExperimentArgs, dataset: str | Path, run_dir: str | Path | None = None
) -> TargetRun:
    """Resolve ``dataset`` and set up its run directory; nothing is written.

    Args:
        args: the profile and overrides.
        dataset: a dataset config path (JSONL or BRAT) or a registered name.
        run_dir: the run directory (default ``runs/<dataset name>``).

    Raises:
        RecordError: the config's problems as ``config.yaml:LINE: ...``; UnknownDatasetError: no
            such name or file; ValueError: a registered name the profile's suite cannot take as a
            target; ConfigError: the run directory holds a run made with another config.
    """
    spec = resolve_dataset(dataset)  # a name, or a config checked whole (file:line)
    target = str(Path(dataset).expanduser().resolve()) if is_config_path(dataset) else spec.name
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / spec.name
    args = dataclasses.replace(
        args,
        output_dir=str(run_dir),
        data=dataclasses.replace(args.data, targets=[target]),
    )
    suite_tasks(args.data)  # the target must be one the run's later commands can read back
    _check_same_config(RunLayout(args.run_dir), args)
    return TargetRun(spec, args, target)


def _key(ref: ArtifactRef) -> tuple[str, str, str, int]:
    return (ref.method, ref.target, ref.setting, ref.seed)


def _merge(refs: list[ArtifactRef]) -> list[ArtifactRef]:
    """One reference per (method, target, setting, seed): a later one replaces an earlier one,
    in the earlier one's place."""
    merged: dict[tuple[str, str, str, int], ArtifactRef] = {}
    for ref in refs:
        merged[_key(ref)] = ref
    return list(merged.values())


def record_artifacts(run_dir: str | Path, refs: list[ArtifactRef]) -> Path:
    """Merge ``refs`` into ``RUN/artifacts.json`` (atomically); return its path."""
    path = Path(run_dir) / ARTIFACTS_FILE
    old = [ArtifactRef(**r) for r in read_json(path)["artifacts"]] if path.exists() else []
    write_json(path, {"artifacts": [r.to_dict() for r in _merge([*old, *refs])]})
    return path


def recorded_artifacts(run_dir: str | Path) -> list[ArtifactRef]:
    """Every artifact ``run_dir`` records: ``run.json``, the stages' ``DONE.json`` (adapt,
    baseline) and ``artifacts.json``, one per (method, target, setting, seed)."""
    layout = RunLayout(Path(run_dir))
    files = [
        layout.root / "run.json",
        layout.stage_dir("adapt") / "DONE.json",
        layout.stage_dir("baseline") / "DONE.json",
        layout.root / ARTIFACTS_FILE,
    ]
    found: list[ArtifactRef] = []
    for path in files:
        if path.exists():
            found += [ArtifactRef(**r) for r in read_json(path).get("artifacts", [])]
    return _merge(found)


def record_step(
    run: TargetRun, stage: str, seconds: float, backbone: Any, command: str | None = None
) -> None:
    """Add one command's work to ``RUN/provenance.json`` (shown under the report's tables):
    the stage's time, the backbone, the budgets, the hardware, and the command line, appended
    to those run before in this directory."""
    from clinprompt.eval.provenance import (
        backbone_description,
        budgets,
        hardware,
        record_provenance,
    )

    path = run.layout.root / "provenance.json"
    commands = list(read_json(path).get("commands", [])) if path.exists() else []
    if command and command not in commands:
        commands.append(command)
    fields: dict[str, Any] = {
        "target": run.spec.name,
        "backbone": backbone_description(backbone),
        "budgets": budgets(run.args),
        "hardware": hardware(),
        "stages": {stage: {"seconds": round(seconds, 1), "status": "ran"}},
    }
    if commands:
        fields.update(commands=commands, command=" ; ".join(commands))
    record_provenance(run.layout.root, **fields)
