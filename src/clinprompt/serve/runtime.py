"""What the server knows about each task of a bank: its spec, task type, prompt and input schema.

A task's spec is the one its bank entry stores (no dataset registry is consulted); its task type
says which input fields a request must carry and how many tokens to generate by default.
A :class:`TaskTable` is an immutable snapshot of a bank; a reload builds a new one and swaps it
in, so requests already queued keep the table (and prompts) they were admitted with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch

from clinprompt.prompts.bank import PromptBank, TaskEntry, template_mismatch
from clinprompt.tasks.base import (
    ANSWER_CUE,
    UNPARSEABLE,
    Example,
    Parsed,
    TaskType,
    get_task_type,
)
from clinprompt.tasks.spec import TaskSpec

__all__ = [
    "InputError",
    "TaskRuntime",
    "TaskTable",
    "load_task_table",
    "task_spec",
]

_JSON_TYPE = {str: "string", list: "array", dict: "object"}


class InputError(ValueError):
    """An input record the task cannot take (which input, which field, what was expected)."""


def task_spec(entry: TaskEntry) -> TaskSpec:
    """The spec a task was trained with: the one its bank entry stores."""
    assert entry.spec is not None  # TaskEntry always sets it
    return entry.spec


@dataclass
class TaskRuntime:
    """One servable task: spec, task type, prompt (P, D) on the model's device, cache key."""

    entry: TaskEntry
    spec: TaskSpec
    task_type: TaskType | None
    prompt: torch.Tensor  # (P, D) in the backbone's dtype and device
    key: str  # prompt-cache key: changes whenever the prompt does
    head_ids: list[int] = field(default_factory=list)
    unavailable: str | None = None  # why the task cannot be served (e.g. task type missing)

    @property
    def name(self) -> str:
        return self.entry.name

    def input_fields(self) -> dict[str, tuple[type, bool]]:
        """Field → (JSON type, required), as the task type declares them for this spec."""
        return self.task_type.input_fields(self.spec) if self.task_type else {}

    def input_schema(self) -> dict[str, str]:
        """Field → ``"string (required)"`` etc., for ``GET /v1/tasks``."""
        return {
            k: f"{_JSON_TYPE[t]} ({'required' if req else 'optional'})"
            for k, (t, req) in self.input_fields().items()
        }

    def max_new_tokens(self) -> int:
        """The entry's recorded budget, else the task type's."""
        default = self.task_type.max_new_tokens if self.task_type else TaskType.max_new_tokens
        return int(self.entry.meta.get("max_new_tokens") or default)

    def check_input(self, index: int, record: Any) -> dict[str, Any]:
        """The record with an ``id``; raises :class:`InputError` naming the input and field."""
        if not isinstance(record, dict):
            raise InputError(f"inputs[{index}] must be a JSON object, got {type(record).__name__}")
        for name, (kind, required) in self.input_fields().items():
            if name not in record:
                if required:
                    raise InputError(
                        f"inputs[{index}]: field '{name}' is required for a {self.entry.task_type} task"
                    )
                continue
            if not isinstance(record[name], kind):
                raise InputError(
                    f"inputs[{index}]: field '{name}' must be a {_JSON_TYPE[kind]}, got {type(record[name]).__name__}"
                )
            if kind is dict and any(not str(k).strip() for k in record[name]):
                # an empty key (qa options) would be a candidate answer with no text
                raise InputError(f"inputs[{index}]: field '{name}' has an empty key")
        if "id" in record and not isinstance(record["id"], str):
            raise InputError(
                f"inputs[{index}]: field 'id' must be a string, got {type(record['id']).__name__}"
            )
        return {
            "id": str(record.get("id", index)),
            **{k: v for k, v in record.items() if k != "id"},
        }

    def example(self, index: int, record: dict[str, Any]) -> Example:
        """The record as text, as :meth:`TaskType.example` builds it (no target: nothing to answer yet)."""
        assert self.task_type is not None
        try:
            body = self.task_type.format_input(record, self.spec)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(
                f"inputs[{index}] cannot be formatted as a {self.entry.task_type} input: {err!r}"
            ) from err
        return Example(
            f"{self.task_type.instruction(self.spec)}\n\n",
            body,
            "",
            self.task_type.truncation(record, self.spec),
        )

    def candidates(self, record: dict[str, Any]) -> list[str] | None:
        """Option strings to score, or None when the record is free generation."""
        assert self.task_type is not None
        try:
            cands = self.task_type.candidates(record, self.spec)
        except Exception:  # a candidates() bug must not take the request down: generate instead
            return None
        return list(cands) if cands else None

    def structure(self, text: str, record: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Parse a generation; return the answer fields (inputs echoed back are dropped) and ok."""
        assert self.task_type is not None
        parsed = self.task_type.parse(text, record, self.spec)
        return _answer_fields(parsed, record), bool(parsed.ok)

    def units(self, record: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The records the model answers for ``record`` (pair-given RE: one per ordered entity
        pair, none below two entities); None when it answers the record itself."""
        assert self.task_type is not None
        units = self.task_type.units(record, self.spec)
        return None if len(units) == 1 and units[0] is record else units

    def merge_units(
        self, record: dict[str, Any], units: list[dict[str, Any]], texts: list[str]
    ) -> tuple[dict[str, Any], bool, str]:
        """The units' answers parsed and merged: (answer fields, ok, the answer as text)."""
        assert self.task_type is not None
        parsed = [self.task_type.parse(t, u, self.spec) for t, u in zip(texts, units, strict=True)]
        merged = self.task_type.merge(record, parsed, self.spec)
        text = self.task_type.format_target(merged.prediction, self.spec)
        return _answer_fields(merged, record), bool(merged.ok), text

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task_type": self.entry.task_type,
            "labels": list(self.spec.labels),
            "dataset": self.entry.dataset,
            "instruction": self.task_type.instruction(self.spec)
            if self.task_type
            else self.entry.instruction,
            "input_fields": self.input_schema(),
            "prompt_kind": self.entry.kind,
            "available": self.unavailable is None,
            "reason": self.unavailable,
        }


_MISSING = object()


def _answer_fields(parsed: Parsed, record: dict[str, Any]) -> dict[str, Any]:
    """The prediction's fields a client did not send (its id kept), without the parse flag."""
    return {
        k: v
        for k, v in parsed.prediction.items()
        if k != UNPARSEABLE and (k == "id" or record.get(k, _MISSING) != v)
    }


@dataclass(frozen=True)
class TaskTable:
    """An immutable snapshot of the servable tasks of a bank."""

    tasks: dict[str, TaskRuntime]
    prompt_tokens: int
    version: int

    def names(self) -> list[str]:
        return list(self.tasks)


def _digest(prompt: torch.Tensor) -> str:
    return hashlib.sha256(prompt.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[
        :16
    ]


def load_task_table(
    bank: PromptBank, tokenizer: Any, device: torch.device, dtype: torch.dtype, version: int = 0
) -> TaskTable:
    """Build the runtime of every task of ``bank`` (prompts moved to the backbone's device)."""
    tasks: dict[str, TaskRuntime] = {}
    for name, entry in bank.tasks.items():
        prompt = bank.task_prompt(name)  # (P, D) fp32
        spec = task_spec(entry)
        unavailable, task_type, head = None, None, []
        try:
            task_type = get_task_type(entry.task_type)
            head = tokenizer(f"{task_type.instruction(spec)}\n\n", add_special_tokens=False)[
                "input_ids"
            ]
        except KeyError as err:
            unavailable = str(err.args[0]) if err.args else repr(err)
        unavailable = unavailable or template_mismatch(entry)
        tasks[name] = TaskRuntime(
            entry=entry,
            spec=spec,
            task_type=task_type,
            prompt=prompt.to(device=device, dtype=dtype),
            key=f"{name}@{_digest(prompt)}",
            head_ids=head,
            unavailable=unavailable,
        )
    return TaskTable(tasks, bank.prompt_tokens, version)


def cue_length(tokenizer: Any) -> int:
    """Tokens of the answer cue (the same for every task)."""
    return len(tokenizer(ANSWER_CUE, add_special_tokens=False)["input_ids"])
