"""Trivial baselines ("floors") that every learned method must beat to mean anything.

* NLI and label-set QA (yes/no/maybe): always the majority label;
* multiple-choice QA: always the most frequent option letter;
* NER and RE: an empty prediction (no entities, no relations);
* summarization: the first sentence of the source;
* free-text QA: an empty answer.

The majority is taken over the ``reference`` records (the training pool when one exists, so the
floor is the label prior a model could learn), else over the evaluated records themselves (an
optimistic floor, and said so in its description). Floor predictions are records of the task
type — the gold record with its answer fields replaced — scored by the task type like any
model's predictions.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from clinprompt.data.spec import DatasetSpec

__all__ = ["Floor", "first_sentence", "floor_predictions"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class Floor:
    """A floor's predictions and what it predicts, in words."""

    kind: str  # majority-label | majority-option | empty | first-sentence
    description: str
    predictions: list[dict[str, Any]]
    constant: str | None = None  # the constant label/letter predicted, when there is one


def first_sentence(text: str) -> str:
    """The first non-empty sentence (or line) of ``text``."""
    for piece in _SENTENCE_END.split(text.strip()):
        if piece.strip():
            return piece.strip()
    return ""


def _majority(values: list[str]) -> str:
    # Ties are broken alphabetically so the floor is deterministic.
    counts = Counter(values)
    best = max(counts.values())
    return sorted(v for v, c in counts.items() if c == best)[0]


def _answer(record: dict[str, Any]) -> str:
    ans = record.get("answer")
    if isinstance(ans, list):
        ans = ans[0] if ans else ""
    return str(ans if ans is not None else "")


def _replace(record: dict[str, Any], **fields: Any) -> dict[str, Any]:
    pred = copy.deepcopy(record)
    pred.update(fields)
    return pred


def _source_note(reference: list[dict[str, Any]] | None) -> str:
    if reference:
        return f"over the {len(reference)} training records"
    return "over the evaluated records themselves (no training pool: an optimistic floor)"


def floor_predictions(
    spec: DatasetSpec,
    records: list[dict[str, Any]],
    reference: list[dict[str, Any]] | None = None,
) -> Floor:
    """The floor of ``spec``'s task type on ``records``.

    Args:
        spec: the evaluated dataset (its task type decides the floor).
        records: the evaluated (gold) records.
        reference: records the majority is computed over (the training pool); None or empty →
            the evaluated records.

    Returns:
        A :class:`Floor` with one prediction per record, in order.

    Raises:
        ValueError: an unknown task type or no records.
    """
    if not records:
        raise ValueError(f"dataset {spec.name!r}: no records to compute a floor on")
    pool = reference or records
    kind = spec.task_type
    if kind == "nli":
        label = _majority([str(r["label"]) for r in pool])
        preds = [_replace(r, label=label) for r in records]
        return Floor(
            "majority-label",
            f"always {label!r}, the majority label {_source_note(reference)}",
            preds,
            label,
        )
    if kind == "qa":
        if any(r.get("options") for r in pool):
            letter = _majority([_answer(r) for r in pool if r.get("options")])
            preds = [_replace(r, answer=letter) for r in records]
            return Floor(
                "majority-option",
                f"always option {letter}, the most frequent answer letter {_source_note(reference)}",
                preds,
                letter,
            )
        if spec.labels:  # a label set (yes/no/maybe): the majority label
            label = _majority([_answer(r) for r in pool])
            preds = [_replace(r, answer=label) for r in records]
            return Floor(
                "majority-label",
                f"always {label!r}, the majority answer {_source_note(reference)}",
                preds,
                label,
            )
        preds = [_replace(r, answer="") for r in records]
        return Floor("empty", "an empty answer", preds)
    if kind == "ner":
        return Floor("empty", "no entities", [_replace(r, entities=[]) for r in records])
    if kind == "re":
        fields: dict[str, Any] = {"relations": []}
        if spec.joint:
            fields["entities"] = []
        return Floor("empty", "no relations", [_replace(r, **fields) for r in records])
    if kind == "sum":
        preds = [_replace(r, summary=first_sentence(str(r.get("source", "")))) for r in records]
        return Floor("first-sentence", "the first sentence of the source", preds)
    raise ValueError(
        f"dataset {spec.name!r}: no floor for task type {kind!r}; expected ner, re, qa, nli or sum"
    )
