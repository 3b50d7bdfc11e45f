"""What a dataset is: its name, task type, labels, instruction and how to load its splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DatasetSpec", "Records", "SplitLoader"]

Records = list[dict[str, Any]]
# A loader takes the data root and returns {split name: records}; splits are "train", "dev", "test".
SplitLoader = Callable[[Path], dict[str, Records]]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset (a "task" once paired with a template).

    Attributes:
        name: registry key, snake_case (``bc5cdr_ner``).
        task_type: ``ner`` | ``re`` | ``qa`` | ``nli`` | ``sum``.
        labels: entity types (ner), relation types (re), classes (nli); empty for qa/sum.
        instruction: the natural-language instruction; None → the task type's default.
        loader: callable(data_root) → {split: records}; None for user configs with ``paths``.
        paths: for user (YAML) datasets: split → JSONL path.
        splits: the split names the loader produces.
        answer_style: qa without options: ``short`` (EM/token F1) or ``long`` (ROUGE-L).
        joint: re only: extract entities and relations together (entities not given).
        synthetic: generated data (the built-in offline suite), labelled so everywhere.
        description: one line for listings; source and licence.
        subdir: where under the data root the native files live.
        extra: anything else a task type needs (kept, ignored by others).
    """

    name: str
    task_type: str
    labels: tuple[str, ...] = ()
    instruction: str | None = None
    loader: SplitLoader | None = None
    paths: dict[str, str] = field(default_factory=dict)
    splits: tuple[str, ...] = ("train", "dev", "test")
    answer_style: str = "short"
    joint: bool = False
    synthetic: bool = False
    description: str = ""
    subdir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (without the loader)."""
        return {
            "name": self.name,
            "task_type": self.task_type,
            "labels": list(self.labels),
            "instruction": self.instruction,
            "splits": list(self.splits),
            "answer_style": self.answer_style,
            "joint": self.joint,
            "synthetic": self.synthetic,
            "description": self.description,
        }
