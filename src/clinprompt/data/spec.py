"""A dataset: a task spec (what the task is) plus how to load its splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from clinprompt.tasks.spec import TaskSpec

__all__ = ["DatasetSpec", "Records", "SplitLoader"]

Records = list[dict[str, Any]]
# A loader takes the data root and returns {split name: records}; splits are "train", "dev", "test".
SplitLoader = Callable[[Path], dict[str, Records]]


@dataclass(frozen=True)
class DatasetSpec(TaskSpec):
    """A registered dataset: a :class:`TaskSpec` plus how to load it.

    Attributes (beyond the :class:`TaskSpec` ones):
        loader: callable(data_root) → {split: records}; None for user configs with ``paths``.
        paths: for user (YAML) datasets: split → JSONL path.
        splits: the split names the loader produces.
        description: one line for listings; source and licence.
        subdir: where under the data root the native files live.
        extra: anything else loading needs (config path, format, leakage notes...). Loaders
            written before :class:`TaskSpec` list RE entity types here as ``entity_types`` (and
            may switch ``pair_classification``): those two are lifted into the spec's fields.
    """

    loader: SplitLoader | None = None
    paths: dict[str, str] = field(default_factory=dict)
    splits: tuple[str, ...] = ("train", "dev", "test")
    description: str = ""
    subdir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.entity_types and self.extra.get("entity_types"):
            object.__setattr__(self, "entity_types", tuple(self.extra["entity_types"]))
        if self.extra.get("pair_classification") is False:
            object.__setattr__(self, "pair_classification", False)

    def task_spec(self) -> TaskSpec:
        """The plain :class:`TaskSpec` of this dataset (what a bank stores; no loading fields)."""
        return TaskSpec(**{f.name: getattr(self, f.name) for f in fields(TaskSpec)})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: the task spec's fields, the splits and the description."""
        return {**super().to_dict(), "splits": list(self.splits), "description": self.description}
