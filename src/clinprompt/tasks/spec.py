"""What a task is: its name, task type, label set, instruction and the switches its type reads.

A :class:`TaskSpec` is the unit training, evaluation and serving share. It says nothing about
where records come from: a dataset (:class:`clinprompt.data.spec.DatasetSpec`) is a TaskSpec plus
how to load it. A prompt bank stores each task's spec whole (:meth:`TaskSpec.to_dict`), so a served
task is formatted, parsed and scored exactly as it was trained, with no dataset registry at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ANSWER_STYLES", "TaskSpec", "TaskSpecError", "is_pair_types"]

ANSWER_STYLES = ("short", "long")


class TaskSpecError(ValueError):
    """A task spec that cannot be read: which field, what was expected."""


@dataclass(frozen=True)
class TaskSpec:
    """What a task is, whatever data it is trained or evaluated on.

    Attributes:
        name: the task's name (a dataset's registry key, snake_case: ``bc5cdr_ner``).
        task_type: ``ner`` | ``re`` | ``qa`` | ``nli`` | ``sum`` (or a registered custom type).
        labels: entity types (ner), relation types (re), classes (nli), an answer set (qa,
            e.g. yes/no/maybe); empty when open.
        instruction: the natural-language instruction; None → the task type's default.
        answer_style: qa without options: ``short`` (EM/token F1) or ``long`` (ROUGE-L).
        joint: re only: extract entities and relations together (entities not given).
        synthetic: generated data (the built-in offline suite), labelled so in every report.
        entity_types: re only: the entity types of the given entities (checked when listed) and
            of the entities a joint task extracts.
        pair_classification: re only, entities given, labels listed: ask one question per
            ordered entity pair and rank its label words and ``none`` by likelihood (see
            :mod:`clinprompt.tasks.relations`); False: generate the record's triples.
        pair_types: re per pair only: the (head type, tail type) signatures a relation may have
            (e.g. ``(Drug, AdverseEffect)``, ``(Drug, Dose)``). Only pairs of these types are
            asked; any other ordered pair is answered ``none`` without the model. Empty: every
            ordered pair of distinct entities is asked.
    """

    name: str
    task_type: str
    labels: tuple[str, ...] = ()
    instruction: str | None = None
    answer_style: str = "short"
    joint: bool = False
    synthetic: bool = False
    entity_types: tuple[str, ...] = ()
    pair_classification: bool = True
    pair_types: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Lists given by callers become tuples, so specs compare and hash by value.
        for name in ("labels", "entity_types"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "pair_types", tuple(tuple(p) for p in self.pair_types))

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-able data (lists for tuples); :meth:`from_dict` reads it back."""
        return {
            "name": self.name,
            "task_type": self.task_type,
            "labels": list(self.labels),
            "instruction": self.instruction,
            "answer_style": self.answer_style,
            "joint": self.joint,
            "synthetic": self.synthetic,
            "entity_types": list(self.entity_types),
            "pair_classification": self.pair_classification,
            "pair_types": [list(p) for p in self.pair_types],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "task spec") -> TaskSpec:
        """A spec from :meth:`to_dict` output, checked field by field.

        ``name`` and ``task_type`` are required; every other field takes its default when absent.
        Keys this version does not know (a dataset's ``splits`` and ``description`` in older
        evaluation files, fields of a later version) are ignored.

        Args:
            data: the mapping to read.
            where: what it is, for error messages (``bank.json task 'x'``).

        Raises:
            TaskSpecError: ``data`` is not a mapping, or a field is missing or of the wrong type;
                the message names the field and what was expected.
        """
        if not isinstance(data, dict):
            raise TaskSpecError(f"{where}: expected an object, got {_describe(data)}")

        def fail(name: str, expected: str) -> TaskSpecError:
            got = _describe(data[name]) if name in data else "nothing (the field is missing)"
            return TaskSpecError(f"{where}: field '{name}': expected {expected}, got {got}")

        for name in ("name", "task_type"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise fail(name, "a non-empty string")
        values: dict[str, Any] = {"name": data["name"], "task_type": data["task_type"]}
        for name in ("labels", "entity_types"):
            value = data.get(name, [])
            if value is None:
                value = []
            if not isinstance(value, list | tuple) or not all(isinstance(x, str) for x in value):
                raise fail(name, "a list of strings")
            values[name] = tuple(value)
        instruction = data.get("instruction")
        if instruction is not None and not isinstance(instruction, str):
            raise fail("instruction", "a string or null (the task type's default)")
        values["instruction"] = instruction
        style = data.get("answer_style", "short")
        if style not in ANSWER_STYLES:
            raise fail("answer_style", " or ".join(ANSWER_STYLES))
        values["answer_style"] = style
        for name in ("joint", "synthetic", "pair_classification"):
            value = data.get(name, cls.__dataclass_fields__[name].default)
            if not isinstance(value, bool):
                raise fail(name, "true or false")
            values[name] = value
        pair_types = data.get("pair_types", [])
        if pair_types is None:
            pair_types = []
        if not is_pair_types(pair_types):
            raise fail("pair_types", "a list of [head type, tail type] pairs of strings")
        values["pair_types"] = pair_types  # tuples of tuples in __post_init__
        return cls(**values)


def is_pair_types(value: Any) -> bool:
    """Whether ``value`` is a list of ``[head type, tail type]`` pairs of non-blank strings
    (:attr:`TaskSpec.pair_types` as JSON or YAML gives it; tuples are accepted too)."""
    return isinstance(value, list | tuple) and all(
        isinstance(p, list | tuple)
        and len(p) == 2
        and all(isinstance(t, str) and t.strip() for t in p)
        for p in value
    )


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
