"""The task-type interface: validate a record, turn it into text, parse text back, score.

One subclass per task type (``ner``, ``re``, ``qa``, ``nli``, ``sum``) lives in its own module and
registers itself with :func:`register_task_type`. Everything else in clinprompt (training,
evaluation, serving) goes through this interface only.

The text-to-text layout (template version :data:`TEMPLATE_VERSION`) is::

    prompt = "{instruction}\\n\\n{input}\\n\\nAnswer:"     (format_input gives {input})
    target = " {target}" + EOS                              (format_target gives {target})

The prompt and the target are tokenized separately and concatenated (see
:mod:`clinprompt.data.collate`), so training, evaluation and serving see identical token ids.

The model answers *units*: :meth:`TaskType.units` turns one input record into the records the model
actually sees (by default the record itself), and :meth:`TaskType.merge` turns the units' parsed
answers back into one prediction for the input record. Training encodes units, evaluation and
serving answer units and merge them; metrics, floors and example counts stay on input records.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from clinprompt.tasks.spec import TaskSpec

__all__ = [
    "ANSWER_CUE",
    "TEMPLATE_VERSION",
    "TASK_TYPES",
    "UNPARSEABLE",
    "Example",
    "Floor",
    "Parsed",
    "Problem",
    "TaskType",
    "format_example",
    "get_task_type",
    "register_task_type",
    "unregister_task_type",
]

TEMPLATE_VERSION = "v1"
ANSWER_CUE = "\n\nAnswer:"
TASK_TYPES = ("ner", "re", "qa", "nli", "sum")
# Set to True on a predicted record whose generation could not be (fully) parsed; scores count it.
UNPARSEABLE = "unparseable"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a record: the field and what was expected."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"field '{self.field}': {self.message}"


@dataclass(frozen=True)
class Example:
    """A record as text. ``prompt_head`` is instruction + blank line, ``input`` the record's input.

    ``keep`` says which part of an input longer than the token budget is kept: ``start`` (the
    end is cut) or ``end`` (the start is cut: e.g. a long vignette whose question and options
    come last).
    """

    prompt_head: str
    input: str
    target: str
    keep: str = "start"

    @property
    def prompt(self) -> str:
        return f"{self.prompt_head}{self.input}{ANSWER_CUE}"


@dataclass
class Parsed:
    """A generation parsed back into a record of the task type; ``ok`` False if unparseable.

    When ``ok`` is False the prediction also carries ``{UNPARSEABLE: True}`` so that
    :meth:`TaskType.score` (which sees only records) can count it.
    """

    prediction: dict[str, Any]
    ok: bool


@dataclass
class Floor:
    """A floor's predictions and what it predicts, in words (see :mod:`clinprompt.tasks.floors`)."""

    kind: str  # majority-label | majority-option | empty | first-sentence
    description: str
    predictions: list[dict[str, Any]]
    constant: str | None = None  # the constant label/letter predicted, when there is one


class TaskType(ABC):
    """Behaviour shared by every task of one task type, and the facts of the type.

    A subclass formats records (:meth:`format_input`, :meth:`format_target`), parses answers
    (:meth:`parse`), scores (:meth:`score`), and may rank :meth:`candidates` instead of generating.
    Two hooks decide what the model is asked: :meth:`units` (the records the model answers for
    one input record; default: the record itself) and :meth:`merge` (one prediction for the input
    record from its units' parsed answers; default: the single unit's). Relation extraction over
    given entities uses them to ask one question per ordered entity pair.

    Attributes:
        name: the registry key (``ner``).
        default_instruction: the instruction of a spec that gives none.
        max_new_tokens: the generation budget when nothing else sets one (evaluation derives a
            tighter one from the training targets; a bank entry may record its own).
        empty_answer: the target text that means "nothing to report" (NER, RE: ``none``), or
            None for a type whose answers cannot be empty (:meth:`answers_none`).
    """

    name: str = ""
    default_instruction: str = ""
    max_new_tokens: int = 64
    empty_answer: str | None = None

    @abstractmethod
    def validate(self, record: dict[str, Any], spec: TaskSpec | None = None) -> list[Problem]:
        """Every problem with ``record`` against the record format (empty when valid)."""

    @abstractmethod
    def format_input(self, record: dict[str, Any], spec: TaskSpec) -> str:
        """The record's input as text (the passage, question + options, premise + hypothesis...)."""

    @abstractmethod
    def format_target(self, record: dict[str, Any], spec: TaskSpec) -> str:
        """The gold answer as the text the model should generate."""

    @abstractmethod
    def parse(self, text: str, record: dict[str, Any], spec: TaskSpec) -> Parsed:
        """Generated text → a predicted record (same id and input fields). Never raises."""

    @abstractmethod
    def score(
        self, golds: list[dict[str, Any]], preds: list[dict[str, Any] | None], spec: TaskSpec
    ) -> dict[str, float]:
        """Metrics over aligned gold and predicted records (None = missing prediction = wrong)."""

    def primary_metric(self, spec: TaskSpec) -> str:
        """The metric name reported in the paper table for this task type."""
        raise NotImplementedError

    def candidates(self, record: dict[str, Any], spec: TaskSpec) -> list[str] | None:
        """Target strings to rank by likelihood for classification-like records, else None."""
        return None

    def template_version(self, spec: TaskSpec) -> str:
        """The version of the text this type poses ``spec``'s records as; a prompt trained on
        another version is refused where it would be used (its bank entry records its version)."""
        return TEMPLATE_VERSION

    def formulation(self, spec: TaskSpec) -> str:
        """How records of ``spec`` are posed to the model and scored, in words (for reports)."""
        return "generation, parsed"

    def answers_none(self, record: dict[str, Any], spec: TaskSpec) -> bool:
        """Whether the gold answer of ``record`` (a unit) is :attr:`empty_answer`: no entity, no
        relation. ``adapt.max_empty_fraction`` caps such units' share of a training pool.
        Never for a type without an empty answer."""
        return (
            self.empty_answer is not None and self.format_target(record, spec) == self.empty_answer
        )

    def units(self, record: dict[str, Any], spec: TaskSpec) -> list[dict[str, Any]]:
        """The records the model answers for the input ``record`` (default: ``[record]``).

        Each unit is formatted, given candidates, generated or scored and parsed like a record
        (:meth:`example`, :meth:`candidates`, :meth:`parse`); training encodes one example per
        unit. An empty list means the record is answered without the model (:meth:`merge` of no
        units). Must not raise on a record that passed :meth:`input_fields`.
        """
        return [record]

    def merge(self, record: dict[str, Any], units: list[Parsed], spec: TaskSpec) -> Parsed:
        """One prediction for ``record`` from its units' parsed answers, in :meth:`units` order.

        The default (one unit, the record itself) returns that unit's answer.

        Raises:
            ValueError: the default got other than one unit.
        """
        if len(units) != 1:
            raise ValueError(
                f"task type {self.name!r} answers a record as one unit; got {len(units)}"
            )
        return units[0]

    def input_fields(self, spec: TaskSpec) -> dict[str, tuple[type, bool]]:
        """The input fields of a record (the record minus its answer): name → (JSON type, required).

        Serving checks requests against it. Empty: no declared fields (any object is passed to
        :meth:`format_input`).
        """
        return {}

    def floor(
        self, records: list[dict[str, Any]], reference: list[dict[str, Any]] | None, spec: TaskSpec
    ) -> Floor:
        """The trivial baseline of the type on ``records`` (see :mod:`clinprompt.tasks.floors`).

        Args:
            records: the evaluated (gold) records, at least one.
            reference: the records a majority is taken over (the training pool); None or empty →
                ``records``.
            spec: the evaluated task.

        Raises:
            ValueError: the type has no floor.
        """
        raise ValueError(f"task {spec.name!r}: task type {self.name!r} has no floor")

    def instruction(self, spec: TaskSpec) -> str:
        return spec.instruction or self.default_instruction

    def truncation(self, record: dict[str, Any], spec: TaskSpec) -> str:
        """Which part of an over-long input to keep: ``start`` (default) or ``end``."""
        return "start"

    def example(self, record: dict[str, Any], spec: TaskSpec) -> Example:
        """The record as (prompt head, input, target) text."""
        return Example(
            f"{self.instruction(spec)}\n\n",
            self.format_input(record, spec),
            self.format_target(record, spec),
            self.truncation(record, spec),
        )


_TASK_TYPES: dict[str, TaskType] = {}


def register_task_type(task_type: TaskType) -> TaskType:
    """Register a task type instance under its ``name``."""
    _TASK_TYPES[task_type.name] = task_type
    return task_type


def unregister_task_type(name: str) -> None:
    """Remove the task type ``name`` (tests that register their own types clean up with it)."""
    _TASK_TYPES.pop(name, None)


def get_task_type(name: str) -> TaskType:
    """The task type ``name`` (ner, re, qa, nli, sum)."""
    if not _TASK_TYPES:
        import clinprompt.tasks  # noqa: F401  (registers the five types)
    if name not in _TASK_TYPES:
        close = difflib.get_close_matches(name, list(TASK_TYPES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(
            f"unknown task type {name!r}.{hint} Expected one of: {', '.join(TASK_TYPES)}"
        )
    return _TASK_TYPES[name]


def format_example(record: dict[str, Any], spec: TaskSpec) -> Example:
    """Shortcut: the record of task ``spec`` as text."""
    return get_task_type(spec.task_type).example(record, spec)
