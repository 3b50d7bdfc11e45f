"""Trivial baselines ("floors") that every learned method must beat to mean anything.

Each task type owns its floor (:meth:`TaskType.floor`); the five built-in ones are:

* NLI and label-set QA (yes/no/maybe): always the majority label;
* multiple-choice QA: always the most frequent option letter;
* NER and RE: an empty prediction (no entities, no relations);
* summarization: the first sentence of the source;
* free-text QA: an empty answer.

The majority is taken over the ``reference`` records (the training pool when one exists, so the
floor is the label prior a model could learn), else over the evaluated records themselves (an
optimistic floor, and said so in its description). Floor predictions are records of the task
type — the gold record with its answer fields replaced — scored by the task type like any
model's predictions. This module holds what the floors share and :func:`floor_predictions`.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import Any

# Floor is defined with the interface that returns it; it is part of this module's API too.
from clinprompt.tasks.base import TASK_TYPES, Floor, get_task_type
from clinprompt.tasks.spec import TaskSpec

__all__ = [
    "Floor",
    "first_sentence",
    "floor_predictions",
    "majority",
    "pool_note",
    "with_fields",
]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def first_sentence(text: str) -> str:
    """The first non-empty sentence (or line) of ``text``."""
    for piece in _SENTENCE_END.split(text.strip()):
        if piece.strip():
            return piece.strip()
    return ""


def majority(values: list[str]) -> str:
    """The most frequent value; ties are broken alphabetically so the floor is deterministic."""
    counts = Counter(values)
    best = max(counts.values())
    return sorted(v for v, c in counts.items() if c == best)[0]


def with_fields(record: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A deep copy of ``record`` with ``fields`` replaced (the gold record is left untouched)."""
    pred = copy.deepcopy(record)
    pred.update(fields)
    return pred


def pool_note(reference: list[dict[str, Any]] | None) -> str:
    """Which records a majority was taken over, for a floor's description."""
    if reference:
        return f"over the {len(reference)} training records"
    return "over the evaluated records themselves (no training pool: an optimistic floor)"


def floor_predictions(
    spec: TaskSpec,
    records: list[dict[str, Any]],
    reference: list[dict[str, Any]] | None = None,
) -> Floor:
    """The floor of ``spec``'s task type on ``records`` (:meth:`TaskType.floor`).

    Args:
        spec: the evaluated task (its task type decides the floor).
        records: the evaluated (gold) records.
        reference: records the majority is computed over (the training pool); None or empty →
            the evaluated records.

    Returns:
        A :class:`Floor` with one prediction per record, in order.

    Raises:
        ValueError: an unknown task type, one without a floor, or no records.
    """
    if not records:
        raise ValueError(f"dataset {spec.name!r}: no records to compute a floor on")
    try:
        task = get_task_type(spec.task_type)
    except KeyError:
        raise ValueError(
            f"dataset {spec.name!r}: no floor for task type {spec.task_type!r}; "
            f"expected {', '.join(TASK_TYPES[:-1])} or {TASK_TYPES[-1]}"
        ) from None
    return task.floor(records, reference, spec)
