"""Reading and validating records (``../shared/spec/records.md``): every problem, with file:line.

A JSONL file is read whole and checked whole: undecodable bytes (with their byte offset),
malformed JSON lines, lines that are not objects, missing/duplicate ``id``, and every field rule
of the task type. All problems are collected and raised together as one :class:`RecordError`
(never a silently skipped or half-loaded file). Blank lines are ignored; a UTF-8 byte-order mark
at the start of the file is tolerated. Unknown extra fields are kept untouched.

The field checkers at the bottom (``check_*``) are shared by the task types' ``validate``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinprompt.tasks.base import UNPARSEABLE, Parsed, Problem, TaskType, get_task_type
from clinprompt.tasks.spec import TaskSpec

__all__ = [
    "MISSING",
    "Issue",
    "RecordError",
    "check_entities",
    "check_id",
    "check_label",
    "check_str",
    "describe",
    "find_issues",
    "prediction",
    "read_jsonl",
    "read_records",
    "validate_records",
]


@dataclass(frozen=True)
class Issue:
    """One problem in a file: where (path, 1-based line), which field, what was expected."""

    path: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:"
        return (
            f"{where} field '{self.field}': {self.message}"
            if self.field
            else f"{where} {self.message}"
        )


class RecordError(ValueError):
    """Records that break the record format; ``issues`` lists every problem (one per line of str)."""

    def __init__(self, issues: Iterable[Issue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


# ----------------------------------------------------------------------------- reading


def read_jsonl(path: str | Path) -> tuple[list[tuple[int, dict[str, Any]]], list[Issue]]:
    """Decode a JSONL file into ``(line number, object)`` pairs plus the file-level issues.

    Only structure is checked here (encoding, JSON, one object per line, not empty); the record
    fields are checked by :func:`find_issues`.
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return [], [Issue(name, 0, None, f"expected a readable JSONL file: {e.strerror or e}")]
    rows: list[tuple[int, dict[str, Any]]] = []
    issues: list[Issue] = []
    offset = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        start, offset = offset, offset + len(raw) + 1
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw, start = raw[3:], start + 3
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            issues.append(
                Issue(
                    name,
                    number,
                    None,
                    f"expected UTF-8 text; invalid byte 0x{raw[e.start]:02x} "
                    f"at byte offset {start + e.start} (column {e.start + 1} of the line)",
                )
            )
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            issues.append(
                Issue(
                    name,
                    number,
                    None,
                    f"expected one JSON object per line; invalid JSON at column {e.colno}: {e.msg}",
                )
            )
            continue
        if not isinstance(value, dict):
            issues.append(
                Issue(
                    name,
                    number,
                    None,
                    f"expected a JSON object ({{...}}) per line, got {describe(value)}",
                )
            )
            continue
        rows.append((number, value))
    if not rows and not issues:
        issues.append(
            Issue(
                name,
                1,
                None,
                "expected at least one JSON record (one object per line); the file is empty",
            )
        )
    return rows, issues


def _resolve(
    spec_or_task_type: TaskSpec | TaskType | str,
) -> tuple[TaskType, TaskSpec | None]:
    if isinstance(spec_or_task_type, TaskSpec):
        return get_task_type(spec_or_task_type.task_type), spec_or_task_type
    if isinstance(spec_or_task_type, TaskType):
        return spec_or_task_type, None
    return get_task_type(spec_or_task_type), None


def find_issues(
    records: Sequence[dict[str, Any]],
    spec_or_task_type: TaskSpec | TaskType | str,
    source: str | Path = "<records>",
    lines: Sequence[int] | None = None,
) -> list[Issue]:
    """Every problem with ``records``: the task type's field rules plus unique ids.

    Args:
        records: the records (dicts) to check.
        spec_or_task_type: a task spec (its labels are enforced), a task type or its name.
        source: the file name used in the issues.
        lines: the line number of each record; default its 1-based position in ``records``.
    """
    task, spec = _resolve(spec_or_task_type)
    lines = list(lines) if lines is not None else list(range(1, len(records) + 1))
    issues: list[Issue] = []
    first_line: dict[str, int] = {}
    for line, record in zip(lines, records, strict=True):
        if not isinstance(record, dict):
            issues.append(
                Issue(str(source), line, None, f"expected a JSON object, got {describe(record)}")
            )
            continue
        issues.extend(
            Issue(str(source), line, p.field, p.message) for p in task.validate(record, spec)
        )
        rid = record.get("id")
        if isinstance(rid, str):
            if rid in first_line:
                issues.append(
                    Issue(
                        str(source),
                        line,
                        "id",
                        f"expected a unique id; {rid!r} is already used on line {first_line[rid]}",
                    )
                )
            else:
                first_line[rid] = line
    return issues


def validate_records(
    records: Sequence[dict[str, Any]],
    spec_or_task_type: TaskSpec | TaskType | str,
    source: str | Path = "<records>",
    lines: Sequence[int] | None = None,
) -> Sequence[dict[str, Any]]:
    """Check ``records`` (see :func:`find_issues`) and return them unchanged.

    Raises:
        RecordError: listing every problem, each as ``source:line: field 'x': expected ...``.
    """
    issues = find_issues(records, spec_or_task_type, source, lines)
    if issues:
        raise RecordError(issues)
    return records


def read_records(path: str | Path, spec: TaskSpec | TaskType | str) -> list[dict[str, Any]]:
    """Read and validate a JSONL file of records of ``spec``'s task type.

    Raises:
        RecordError: every problem in the file (encoding, JSON, fields, duplicate ids).
    """
    rows, issues = read_jsonl(path)
    issues += find_issues([r for _, r in rows], spec, path, [n for n, _ in rows])
    if issues:
        raise RecordError(sorted(issues, key=lambda i: i.line))
    return [r for _, r in rows]


# ----------------------------------------------------------------------------- field checks

MISSING: Any = object()  # sentinel: a field absent from the record


def describe(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    if value is MISSING:
        return "nothing (the field is missing)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return (
            repr(value if len(value) <= 40 else value[:37] + "...") if value else "an empty string"
        )
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_str(
    record: dict[str, Any],
    key: str,
    problems: list[Problem],
    prefix: str = "",
    required: bool = True,
) -> bool:
    """Append a problem unless ``record[key]`` is a non-empty string; True when it is."""
    value = record.get(key, MISSING)
    if value is MISSING and not required:
        return False
    if isinstance(value, str) and value.strip():
        return True
    problems.append(Problem(prefix + key, f"expected a non-empty string, got {describe(value)}"))
    return False


def check_id(record: dict[str, Any], problems: list[Problem]) -> None:
    """The ``id`` field: a non-empty string (uniqueness is checked per file)."""
    check_str(record, "id", problems)


def check_label(
    value: Any, field: str, labels: Sequence[str], problems: list[Problem], what: str = "label"
) -> None:
    """A non-empty string, one of ``labels`` when the dataset lists any."""
    if not isinstance(value, str) or not value.strip():
        problems.append(
            Problem(field, f"expected a non-empty {what} string, got {describe(value)}")
        )
    elif labels and value not in labels:
        problems.append(
            Problem(field, f"expected one of the dataset's {what}s {list(labels)}, got {value!r}")
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_entities(
    record: dict[str, Any],
    problems: list[Problem],
    labels: Sequence[str] = (),
    need_ids: bool = False,
) -> None:
    """``text`` and ``entities`` (offsets into text, type, optional matching ``text``, ids if asked)."""
    has_text = check_str(record, "text", problems)
    text = record.get("text") if has_text else None
    entities = record.get("entities", MISSING)
    if not isinstance(entities, list):
        problems.append(
            Problem(
                "entities",
                f"expected a list of entity objects (may be empty), got {describe(entities)}",
            )
        )
        return
    seen_ids: dict[str, int] = {}
    for i, ent in enumerate(entities):
        f = f"entities[{i}]"
        if not isinstance(ent, dict):
            problems.append(
                Problem(f, f"expected an object with start, end, type, got {describe(ent)}")
            )
            continue
        start, end = ent.get("start", MISSING), ent.get("end", MISSING)
        if not _is_int(start) or start < 0:
            problems.append(
                Problem(
                    f"{f}.start",
                    f"expected an integer >= 0 (character offset), got {describe(start)}",
                )
            )
        if not _is_int(end):
            problems.append(
                Problem(
                    f"{f}.end",
                    f"expected an integer (exclusive character offset), got {describe(end)}",
                )
            )
        if _is_int(start) and _is_int(end) and start >= 0:
            if end <= start:
                problems.append(
                    Problem(f"{f}.end", f"expected an integer > start ({start}), got {end}")
                )
            elif text is not None and end > len(text):
                problems.append(
                    Problem(f"{f}.end", f"expected an offset <= len(text) ({len(text)}), got {end}")
                )
            elif text is not None and "text" in ent and ent["text"] != text[start:end]:
                problems.append(
                    Problem(
                        f"{f}.text",
                        f"expected text[{start}:{end}] = {text[start:end]!r}, got {describe(ent['text'])}",
                    )
                )
        check_label(ent.get("type", MISSING), f"{f}.type", labels, problems, what="entity type")
        if need_ids:
            eid = ent.get("id", MISSING)
            if not isinstance(eid, str) or not eid:
                problems.append(
                    Problem(f"{f}.id", f"expected a non-empty string id, got {describe(eid)}")
                )
            elif eid in seen_ids:
                problems.append(
                    Problem(
                        f"{f}.id",
                        f"expected a unique entity id; {eid!r} is also entities[{seen_ids[eid]}]",
                    )
                )
            else:
                seen_ids[eid] = i


def prediction(
    record: dict[str, Any], outputs: dict[str, Any], ok: bool, drop: Sequence[str] = ()
) -> Parsed:
    """A predicted record: ``record`` without its gold fields ``drop``, plus ``outputs``.

    When ``ok`` is False the record is flagged ``{UNPARSEABLE: True}``.
    """
    pred = {k: v for k, v in record.items() if k not in drop and k != UNPARSEABLE}
    pred.update(outputs)
    if not ok:
        pred[UNPARSEABLE] = True
    return Parsed(pred, ok)
