"""Loss curves of a run's training stages, read back from the training loop's logs.

Every training run (:func:`clinprompt.train.loop.train`) writes ``metrics.jsonl`` in its output
directory: one row per logged step (``step``, ``loss`` and the objective's parts such as ``lm``,
``kl``, ``mse``, ``lr``, ...) and one per dev evaluation (``step``, ``dev_loss``, ``best``). The
directories come from :class:`clinprompt.train.workspace.RunLayout`:

* ``teachers`` — one run per source task;
* ``distill`` — the one distillation run (loss parts lm / kl / mse; its dev loss is the LM
  loss alone);
* ``adapt`` (MPT), ``pt``, ``lora`` — one run per evaluated target × setting × seed (zero-shot
  settings train nothing).

Logs are read tolerantly: an unreadable line (a run killed mid-write) is skipped, a missing or
empty log is left out; either way :func:`collect_curves` says so in its notes, never raises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinprompt.eval.runs import Evaluation
from clinprompt.train.plan import k_of
from clinprompt.train.workspace import RunLayout

__all__ = ["LOG_FILE", "STAGES", "STAGE_LABELS", "LossLog", "collect_curves", "read_log"]

LOG_FILE = "metrics.jsonl"
# stage → what it trains (titles and the Markdown), in pipeline order.
STAGES = {
    "teachers": "teachers (one prompt per source task)",
    "distill": "distillation (P* and the source factors)",
    "adapt": "MPT adaptation",
    "pt": "PT baseline",
    "lora": "LoRA baseline",
}
# stage → its short name (tables and notes)
STAGE_LABELS = {
    "teachers": "teachers",
    "distill": "distillation",
    "adapt": "MPT adaptation",
    "pt": "PT",
    "lora": "LoRA",
}
_STAGE_OF_METHOD = {"mpt": "adapt", "pt": "pt", "lora": "lora"}
# Row fields that are bookkeeping, not a loss (and every ``lr_<group>``: a group's rate).
_NOT_LOSSES = {"step", "lr", "grad_norm", "tokens", "epoch", "elapsed_s", "best"}


@dataclass
class LossLog:
    """One training run's curves: ``train`` maps ``loss`` and each part to its (step, value)
    points; ``dev`` holds the dev loss at each evaluation."""

    stage: str
    name: str  # the source (teachers), "distill", or the target
    setting: str | None  # adapt / pt / lora only
    seed: int
    path: Path
    train: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    dev: list[tuple[int, float]] = field(default_factory=list)
    skipped_lines: int = 0

    @property
    def steps(self) -> int:
        """The last step logged."""
        points = [p for values in self.train.values() for p in values] + self.dev
        return max((s for s, _ in points), default=0)

    @property
    def last_train_loss(self) -> float | None:
        points = self.train.get("loss", [])
        return points[-1][1] if points else None

    @property
    def last_lm_loss(self) -> float | None:
        """The LM part of the last logged step, when the loss has other parts (distillation):
        the number comparable with the dev loss."""
        if set(self.train) <= {"loss", "lm"}:
            return None
        points = self.train.get("lm", [])
        return points[-1][1] if points else None

    @property
    def best_dev(self) -> tuple[int, float] | None:
        """(step, dev loss) of the lowest dev loss."""
        return min(self.dev, key=lambda p: p[1]) if self.dev else None

    def to_dict(self) -> dict[str, Any]:
        best = self.best_dev
        return {
            "stage": self.stage,
            "name": self.name,
            "setting": self.setting,
            "seed": self.seed,
            "path": str(self.path),
            "steps": self.steps,
            "last_train_loss": self.last_train_loss,
            "last_lm_loss": self.last_lm_loss,
            "best_dev_loss": None if best is None else best[1],
            "best_dev_step": None if best is None else best[0],
            "dev_evaluations": len(self.dev),
            "skipped_lines": self.skipped_lines,
        }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def read_log(
    path: str | Path, stage: str, name: str, setting: str | None = None, seed: int = 0
) -> LossLog:
    """Read one ``metrics.jsonl``; unreadable lines are counted in ``skipped_lines``.

    A step logged twice (a resumed run) keeps its last value.

    Raises:
        OSError: the file cannot be read.
    """
    log = LossLog(stage, name, setting, seed, Path(path))
    train: dict[str, dict[int, float]] = {}
    dev: dict[int, float] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (ValueError, KeyError, TypeError):
            log.skipped_lines += 1
            continue
        if not isinstance(row, dict):
            log.skipped_lines += 1
            continue
        if "dev_loss" in row:
            value = _number(row["dev_loss"])
            if value is not None:
                dev[step] = value
            continue
        for key, raw in row.items():
            value = _number(raw)
            if key not in _NOT_LOSSES and not key.startswith("lr_") and value is not None:
                train.setdefault(key, {})[step] = value
    log.train = {k: sorted(v.items()) for k, v in train.items()}
    log.dev = sorted(dev.items())
    return log


def _read(
    folder: Path, stage: str, name: str, setting: str | None, seed: int, notes: list[str]
) -> LossLog | None:
    file = folder / LOG_FILE
    where = (
        f"{STAGE_LABELS[stage]} {name}"
        + (f" {setting}" if setting else "")
        + (f" seed {seed}" if seed else "")
    )
    if not file.is_file():
        notes.append(f"{where}: no training log ({file}); left out of the curves.")
        return None
    try:
        log = read_log(file, stage, name, setting, seed)
    except OSError as err:
        notes.append(f"{where}: {file} could not be read ({err}); left out of the curves.")
        return None
    if log.skipped_lines:
        notes.append(f"{where}: {log.skipped_lines} unreadable line(s) of {file} skipped.")
    if not log.train and not log.dev:
        notes.append(f"{where}: {file} holds no loss; left out of the curves.")
        return None
    return log


def collect_curves(
    run_dirs: Iterable[str | Path], evaluations: Iterable[Evaluation]
) -> tuple[dict[str, list[LossLog]], list[str]]:
    """The loss logs of every stage present in ``run_dirs``, and notes on what was left out.

    Teachers and distillation come from each run directory; adaptation, PT and LoRA from the
    trained ``evaluations`` (their run directory, method, target, setting and seed), so the
    curves are those of the artifacts in the table. A run directory with no training output (an
    evaluation-only folder) contributes nothing and no note.

    Returns:
        (stage → logs in a stable order, notes).
    """
    curves: dict[str, list[LossLog]] = {}
    notes: list[str] = []
    for run in dict.fromkeys(Path(r) for r in run_dirs):
        layout = RunLayout(run)
        teachers = layout.teacher_run("_").parent
        if teachers.is_dir():
            for folder in sorted(p for p in teachers.iterdir() if p.is_dir()):
                log = _read(folder, "teachers", folder.name, None, 0, notes)
                if log is not None:
                    curves.setdefault("teachers", []).append(log)
        if layout.distill_run.is_dir():
            log = _read(layout.distill_run, "distill", "distill", None, 0, notes)
            if log is not None:
                curves.setdefault("distill", []).append(log)
    trained = sorted(
        (ev for ev in evaluations if ev.method in _STAGE_OF_METHOD and k_of(ev.setting) != 0),
        key=lambda ev: (
            ev.method,
            ev.target,
            k_of(ev.setting) is None,
            k_of(ev.setting) or 0,
            ev.seed,
        ),
    )
    for ev in trained:
        stage = _STAGE_OF_METHOD[ev.method]
        layout = RunLayout(ev.run_dir)
        if not layout.stage_dir("baseline" if stage in ("pt", "lora") else stage).is_dir():
            continue  # an evaluation-only run directory: nothing was trained here
        where = {"mpt": layout.adapt_run, "pt": layout.pt_run, "lora": layout.lora_run}
        folder = where[ev.method](ev.target, ev.setting, ev.seed)
        log = _read(folder, stage, ev.target, ev.setting, ev.seed, notes)
        if log is not None:
            curves.setdefault(stage, []).append(log)
    ordered = {s: curves[s] for s in STAGES if s in curves}
    return ordered, notes
