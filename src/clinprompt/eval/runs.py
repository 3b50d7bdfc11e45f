"""The evaluation layout of a run directory, and reading evaluations back.

Every evaluation (one artifact on one target under one training setting) lives in::

    RUN/eval/<method>/<target>/<setting>/          training seed 0 (and untrained methods)
    RUN/eval/<method>/<target>/<setting>.s<seed>/  other training seeds
        metrics.json        all metrics of the task type, n, unparseable, parameters, provenance,
                            ``train_seed`` and ``training`` (chosen learning rate, examples, steps)
        predictions.jsonl   one row per example: id, raw, prediction, ok, gold, score
        config.json         the resolved evaluation config
    RUN/eval/index.json     every evaluation of the run: method, target, setting, metric, value
    RUN/provenance.json     command, backbone, budgets, hardware and wall time of the run

``method`` is one of :data:`METHODS` (``floor``, ``zeroshot``, ``pt``, ``lora``, ``mpt``) or any
other name; ``setting`` is ``full`` (the whole training pool), ``k16``/``k64`` (few-shot) or
``k0`` (zero-shot: no target training), as :mod:`clinprompt.train.plan` names them. The
directory tree is the source of truth; the index is rebuilt from it after each evaluation.
Evaluations written before training seeds existed carry no ``train_seed``: they are seed 0.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinprompt.artifacts import read_json, write_json
from clinprompt.tasks.spec import TaskSpec
from clinprompt.train.plan import k_of, seeded

__all__ = [
    "EVAL_DIR",
    "MAIN_COLUMNS",
    "METHODS",
    "METHOD_LABELS",
    "PROVENANCE_FILE",
    "RunKey",
    "SETTINGS",
    "TYPE_ORDER",
    "Evaluation",
    "collect",
    "evaluation_dir",
    "metric_label",
    "write_index",
]

EVAL_DIR = "eval"
PROVENANCE_FILE = "provenance.json"
METHODS = ("floor", "zeroshot", "pt", "lora", "mpt")
METHOD_LABELS = {
    "floor": "Floor",
    "zeroshot": "Zero-shot",
    "pt": "PT",
    "lora": "LoRA",
    "mpt": "MPT",
}
SETTINGS = ("k0", "k16", "k64", "full")  # the protocol's; any k<N> is accepted
TYPE_ORDER = ("ner", "re", "qa", "nli", "sum")
# (method, setting) of each column of the report's main table.
MAIN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("floor", "full"),
    ("zeroshot", "k0"),
    ("pt", "full"),
    ("lora", "full"),
    ("mpt", "full"),
)
_METRIC_LABELS = {
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "strict_f1": "strict F1",
    "lenient_f1": "lenient F1",
    "f1": "F1",
    "exact_match": "exact match",
    "token_f1": "token F1",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
}


# (method, target, setting, train_seed): one evaluation of one trained artifact.
RunKey = tuple[str, str, str, int]
_SEED_SUFFIX = re.compile(r"\.s(\d+)$")


def metric_label(name: str) -> str:
    """A readable metric name (``rougeL`` → ``ROUGE-L``)."""
    return _METRIC_LABELS.get(name, name.replace("_", " "))


def evaluation_dir(
    run_dir: str | Path, method: str, target: str, setting: str = "full", seed: int = 0
) -> Path:
    """``RUN/eval/<method>/<target>/<setting>`` for training seed 0 (and untrained methods),
    ``RUN/eval/<method>/<target>/<setting>.s<seed>`` for other seeds."""
    k_of(setting)  # validates
    return Path(run_dir) / EVAL_DIR / method / target / seeded(setting, seed)


@dataclass
class Evaluation:
    """One ``metrics.json`` read back."""

    path: Path
    data: dict[str, Any]
    _rows: dict[str, dict[str, Any]] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, metrics_path: str | Path) -> Evaluation:
        path = Path(metrics_path)
        data = read_json(path)
        for key in ("method", "target", "setting", "task_type", "primary_metric", "metrics", "n"):
            if key not in data:
                raise ValueError(
                    f"{path}: field {key!r} is missing; was it written by `clinprompt evaluate`?"
                )
        return cls(path, data)

    @property
    def method(self) -> str:
        return str(self.data["method"])

    @property
    def target(self) -> str:
        return str(self.data["target"])

    @property
    def setting(self) -> str:
        return str(self.data["setting"])

    @property
    def task_type(self) -> str:
        return str(self.data["task_type"])

    @property
    def primary_metric(self) -> str:
        return str(self.data["primary_metric"])

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.data["metrics"])

    @property
    def primary(self) -> float:
        return float(self.data["metrics"][self.primary_metric])

    @property
    def n(self) -> int:
        return int(self.data["n"])

    @property
    def unparseable(self) -> int:
        return int(self.data.get("unparseable", 0))

    @property
    def trainable_params(self) -> int | None:
        value = self.data.get("trainable_params")
        return None if value is None else int(value)

    @property
    def backbone_params(self) -> int | None:
        value = self.data.get("backbone_params")
        return None if value is None else int(value)

    @property
    def backbone(self) -> str:
        return str(self.data.get("backbone", {}).get("name", "?"))

    @property
    def synthetic(self) -> bool:
        return bool(self.data.get("synthetic", False))

    @property
    def spec(self) -> TaskSpec | None:
        raw = self.data.get("spec")
        return TaskSpec.from_dict(raw, where=f"{self.path}: spec") if raw else None

    @property
    def seed(self) -> int:
        """The training seed: ``train_seed``, else the directory's ``.s<seed>`` suffix, else 0."""
        if "train_seed" in self.data:
            return int(self.data["train_seed"])
        match = _SEED_SUFFIX.search(self.path.parent.name)
        return int(match.group(1)) if match else 0

    @property
    def training(self) -> dict[str, Any] | None:
        """What training used (``chosen_lr``, ``lr_candidates``, ``train_examples``,
        ``train_steps``, ``epochs``); None for untrained methods and older runs."""
        value = self.data.get("training")
        return dict(value) if isinstance(value, dict) else None

    @property
    def formulation(self) -> str | None:
        """How the task was posed and scored (the task type's ``formulation``), when the
        evaluation records it; None for older runs."""
        value = self.data.get("formulation")
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in value.items())
        if value:
            return str(value)
        return None

    @property
    def run_dir(self) -> Path:
        """The run directory holding this evaluation (``RUN`` of ``RUN/eval/m/t/s/``)."""
        return self.path.parents[4]

    @property
    def key(self) -> tuple[str, str, str]:
        """(method, target, setting): the table cell this evaluation is a seed of."""
        return (self.method, self.target, self.setting)

    @property
    def run_key(self) -> RunKey:
        """(method, target, setting, seed)."""
        return (self.method, self.target, self.setting, self.seed)

    def rows(self) -> dict[str, dict[str, Any]]:
        """The ``predictions.jsonl`` rows by example id (read once)."""
        if self._rows is None:
            file = self.path.parent / "predictions.jsonl"
            rows: dict[str, dict[str, Any]] = {}
            if file.exists():
                for line in file.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        row = json.loads(line)
                        rows[str(row["id"])] = row
            self._rows = rows
        return self._rows

    def scored_answers(self) -> Counter[str]:
        """How often each candidate was chosen among the option-scored answers (a record's own
        answer, or each unit's for a record of several units); empty for generations and for
        evaluations written before units' answers were recorded."""
        counts: Counter[str] = Counter()
        for row in self.rows().values():
            via = str(row.get("via", ""))
            if via == "options":
                counts[str(row.get("raw", ""))] += 1
            elif via.endswith("by options"):
                counts.update(str(a) for a in row.get("unit_answers") or [])
        return counts


def collect(run_dirs: list[str | Path]) -> list[Evaluation]:
    """Every evaluation under ``RUN/eval/*/*/*/metrics.json`` of each run directory.

    A later run directory's evaluation replaces an earlier one with the same (method, target,
    setting, training seed), so a rerun of one target can be laid over a full run. Returned in
    (method, target, setting, seed) order.

    Raises:
        FileNotFoundError: a run directory that does not exist or holds no evaluation.
    """
    found: dict[RunKey, Evaluation] = {}
    for run in run_dirs:
        root = Path(run)
        if not root.is_dir():
            raise FileNotFoundError(f"run directory {root} does not exist")
        files = sorted((root / EVAL_DIR).glob("*/*/*/metrics.json"))
        if not files:
            raise FileNotFoundError(
                f"{root} holds no evaluation ({root / EVAL_DIR}/<method>/<target>/<setting>/metrics.json); "
                "run `clinprompt evaluate --run-dir` or `clinprompt demo` first"
            )
        for file in files:
            ev = Evaluation.load(file)
            found[ev.run_key] = ev
    return [found[k] for k in sorted(found)]


def write_index(run_dir: str | Path) -> Path:
    """Rebuild ``RUN/eval/index.json`` from the evaluation directories."""
    root = Path(run_dir)
    entries = []
    for file in sorted((root / EVAL_DIR).glob("*/*/*/metrics.json")):
        ev = Evaluation.load(file)
        entries.append(
            {
                "method": ev.method,
                "target": ev.target,
                "setting": ev.setting,
                "train_seed": ev.seed,
                "task_type": ev.task_type,
                "metric": ev.primary_metric,
                "value": ev.primary,
                "n": ev.n,
                "unparseable": ev.unparseable,
                "path": str(file.parent.relative_to(root)),
            }
        )
    return write_json(root / EVAL_DIR / "index.json", {"evaluations": entries})
