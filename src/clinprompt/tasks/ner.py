"""Named entity recognition as text to text.

Target format: ``Type: mention`` chunks joined by `` | `` in text order (start ascending, longer
span first, then type), ``none`` when there is no entity::

    Drug: metformin | Problem: type 2 diabetes | Problem: diabetes

Mentions map back to character offsets by searching the record's text, relative to the
previously placed entity and skipping spans already given the same type:

* the default location of a mention is its first occurrence starting at or after the end of the
  previous entity that is not already an entity of that type; failing that, the first such
  occurrence starting at or after the previous entity's start (nested and overlapping entities);
  failing that, the first anywhere (exact matches first, then case-insensitive ones);
* when the default is not the gold span (an earlier occurrence is not annotated, or a nested
  entity's mention occurs again later), the target adds an occurrence marker `` #k``: the k-th
  occurrence of the mention in the whole text (1-based, overlapping occurrences counted). A
  mention that itself ends in `` #<digits>`` always gets a marker, so the marker is never ambiguous.

So flat annotations that cover every occurrence (``lung cancer ... cancer``), repeated mentions and
most nested entities (``type 2 diabetes`` / ``diabetes``) need no marker. The formatter runs the
parser's own search, so ``parse(format_target(gold))`` gives back exactly the gold (start, end,
type) set (exact duplicates collapse), even for mentions with leading/trailing whitespace as long
as the generation is not stripped at its end (such spans are data errors anyway).

Parsing never raises: chunks without a known type, or whose mention is not in the text, are
skipped (they score as misses) and the prediction is flagged unparseable. A chunk that lacks a
type prefix is glued back to the previous mention with `` | `` only when the glued mention occurs
in the text, so mentions that contain `` | `` also round-trip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from clinprompt.tasks.base import UNPARSEABLE, Parsed, Problem, TaskType, register_task_type
from clinprompt.tasks.floors import Floor, with_fields
from clinprompt.tasks.metrics import entity_f1
from clinprompt.tasks.records import check_entities, check_id, prediction
from clinprompt.tasks.spec import TaskSpec

__all__ = [
    "NERTask",
    "NONE",
    "SEP",
    "entity_spans",
    "valid_entity",
    "format_entities",
    "parse_entities",
    "sorted_entities",
]

NONE = "none"
SEP = " | "
_MARK = re.compile(r" #(\d+)$")
Span = tuple[int, int]


def valid_entity(entity: Any, text: str | None = None) -> bool:
    """A dict with int 0 <= start < end (<= len(text) when given) and a non-empty string type."""
    if not isinstance(entity, dict):
        return False
    s, e, t = entity.get("start"), entity.get("end"), entity.get("type")
    ok = (
        isinstance(s, int)
        and isinstance(e, int)
        and not isinstance(s, bool)
        and not isinstance(e, bool)
    )
    ok = ok and isinstance(t, str) and bool(t) and 0 <= s < e
    return ok and (text is None or e <= len(text))


def sorted_entities(entities: Any, text: str | None = None) -> list[dict[str, Any]]:
    """Well-formed entities in target order (start, longer first, type), one per (start, end, type)."""
    seen: dict[tuple[int, int, str], dict[str, Any]] = {}
    for ent in entities if isinstance(entities, list) else []:
        if valid_entity(ent, text):
            seen.setdefault((ent["start"], ent["end"], ent["type"]), ent)
    return [seen[k] for k in sorted(seen, key=lambda k: (k[0], -k[1], k[2]))]


def entity_spans(entities: Any) -> tuple[list[tuple[int, int, str]], bool]:
    """``(start, end, type)`` tuples of the well-formed entities, and whether all were well-formed."""
    if not isinstance(entities, list):
        return [], False
    spans = [(e["start"], e["end"], e["type"]) for e in entities if valid_entity(e)]
    return spans, len(spans) == len(entities)


def _occurrences(text: str, mention: str, ignore_case: bool = False) -> list[Span]:
    if not mention:
        return []
    if ignore_case:
        pattern = re.compile(f"(?=({re.escape(mention)}))", re.IGNORECASE)
        return [(m.start(), m.end(1)) for m in pattern.finditer(text)]
    found, i = [], text.find(mention)
    while i >= 0:
        found.append((i, i + len(mention)))
        i = text.find(mention, i + 1)
    return found


class _Locator:
    """Maps mentions to spans: the previous entity's span and the spans already placed per type."""

    def __init__(self, text: str):
        self.text = text
        self.previous: Span = (0, 0)
        self.placed: set[tuple[int, int, str]] = set()

    def default(self, mention: str, etype: str) -> Span | None:
        for variant in dict.fromkeys((mention, mention.strip())):
            for ignore_case in (False, True):
                free = [
                    (s, e)
                    for s, e in _occurrences(self.text, variant, ignore_case)
                    if (s, e, etype) not in self.placed
                ]
                for floor in (self.previous[1], self.previous[0], 0):
                    after = [span for span in free if span[0] >= floor]
                    if after:
                        return after[0]
        return None

    def nth(self, mention: str, k: int) -> Span | None:
        spans = _occurrences(self.text, mention) or _occurrences(
            self.text, mention, ignore_case=True
        )
        return spans[k - 1] if 1 <= k <= len(spans) else None

    def place(self, span: Span, etype: str) -> None:
        self.placed.add((*span, etype))
        self.previous = span


def format_entities(text: str, entities: Any) -> str:
    """The target string for ``entities`` of ``text`` (see the module docstring)."""
    locator, chunks = _Locator(text), []
    for ent in sorted_entities(entities, text):
        span, etype = (ent["start"], ent["end"]), ent["type"]
        mention = text[span[0] : span[1]]
        if locator.default(mention, etype) == span and not _MARK.search(mention.rstrip()):
            chunks.append(f"{etype}: {mention}")
        else:
            k = _occurrences(text, mention).index(span) + 1
            chunks.append(f"{etype}: {mention} #{k}")
        locator.place(span, etype)
    return SEP.join(chunks) or NONE


def _split_type(piece: str, labels: Sequence[str]) -> tuple[str, str] | None:
    """``(type, mention)`` when ``piece`` starts with a type prefix (a known label when listed)."""
    if labels:
        for label in sorted(labels, key=len, reverse=True):
            if piece.startswith(f"{label}: "):
                return label, piece[len(label) + 2 :]
        for label in sorted(labels, key=len, reverse=True):
            if piece.lower().startswith(f"{label.lower()}: "):
                return label, piece[len(label) + 2 :]
        return None
    head, sep, rest = piece.partition(": ")
    return (head, rest) if sep and head.strip() and "|" not in head else None


def _chunks(output: str, text: str, labels: Sequence[str]) -> tuple[list[tuple[str, str]], bool]:
    chunks: list[tuple[str, str]] = []
    ok, previous_ok = True, False
    lowered = text.lower()
    for piece in output.split(SEP):
        typed = _split_type(piece, labels)
        glued = f"{chunks[-1][1]}{SEP}{piece}" if chunks and previous_ok else None
        if typed is None and glued is not None and _MARK.sub("", glued.rstrip()).lower() in lowered:
            chunks[-1] = (chunks[-1][0], glued)  # the mention itself contains " | "
        elif typed is not None:
            chunks.append(typed)
        else:
            ok = previous_ok = False
            continue
        previous_ok = True
    return chunks, ok


def parse_entities(
    output: str, text: str, labels: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], bool]:
    """Entities (start, end, type, text) from a generated target; never raises.

    Returns:
        The entities placed in ``text`` and whether every chunk of ``output`` could be placed.
    """
    # Only leading whitespace goes: a gold mention may end in a space (the default search retries
    # a mention stripped, so stray trailing whitespace in a generation is harmless).
    output = output.lstrip() if isinstance(output, str) else ""
    if output.rstrip().lower().rstrip(".") == NONE:
        return [], True
    if not output.strip() or not isinstance(text, str):
        return [], False
    chunks, ok = _chunks(output, text, labels)
    locator, entities = _Locator(text), []
    for etype, mention in chunks:
        span = None
        mark = _MARK.search(mention.rstrip())
        if mark:
            span = locator.nth(mention[: mark.start()], int(mark.group(1)))
        if span is None:
            span = locator.default(mention, etype)
        if span is None or (*span, etype) in locator.placed:
            # A chunk repeating an entity already placed (no free occurrence left) is harmless.
            ok = ok and (
                span is not None or bool(_occurrences(text, mention.strip(), ignore_case=True))
            )
            continue
        locator.place(span, etype)
        entities.append(
            {"start": span[0], "end": span[1], "type": etype, "text": text[span[0] : span[1]]}
        )
    return entities, ok


class NERTask(TaskType):
    """Named entity recognition: ``text`` → ``entities``; strict and lenient micro entity F1."""

    name = "ner"
    default_instruction = (
        "Extract every entity mentioned in the text with its type. Answer none if there is none."
    )
    max_new_tokens = 96
    empty_answer = NONE

    def validate(self, record: dict[str, Any], spec: TaskSpec | None = None) -> list[Problem]:
        problems: list[Problem] = []
        check_id(record, problems)
        check_entities(record, problems, labels=spec.labels if spec else ())
        return problems

    def format_input(self, record: dict[str, Any], spec: TaskSpec) -> str:
        return record["text"]

    def format_target(self, record: dict[str, Any], spec: TaskSpec) -> str:
        return format_entities(record["text"], record.get("entities", []))

    def parse(self, text: str, record: dict[str, Any], spec: TaskSpec) -> Parsed:
        try:
            entities, ok = parse_entities(text, record.get("text", ""), spec.labels)
        except Exception:  # never raise on a generation
            entities, ok = [], False
        return prediction(record, {"entities": entities}, ok, drop=("entities",))

    def score(
        self, golds: list[dict[str, Any]], preds: list[dict[str, Any] | None], spec: TaskSpec
    ) -> dict[str, float]:
        gold_spans = [entity_spans(g.get("entities"))[0] for g in golds]
        pred_spans, missing, unparseable = [], 0, 0
        for pred in preds:
            if pred is None:
                missing += 1
                pred_spans.append([])
                continue
            spans, clean = entity_spans(pred.get("entities"))
            unparseable += bool(pred.get(UNPARSEABLE)) or not clean
            pred_spans.append(spans)
        strict = entity_f1(gold_spans, pred_spans, "strict")
        lenient = entity_f1(gold_spans, pred_spans, "lenient")
        return {
            **{f"strict_{k}": v for k, v in strict.items()},
            **{f"lenient_{k}": v for k, v in lenient.items()},
            "n": len(golds),
            "missing": missing,
            "unparseable": unparseable,
        }

    def primary_metric(self, spec: TaskSpec) -> str:
        return "strict_f1"

    def input_fields(self, spec: TaskSpec) -> dict[str, tuple[type, bool]]:
        return {"text": (str, True)}

    def floor(
        self, records: list[dict[str, Any]], reference: list[dict[str, Any]] | None, spec: TaskSpec
    ) -> Floor:
        """No entities."""
        return Floor("empty", "no entities", [with_fields(r, entities=[]) for r in records])


register_task_type(NERTask())
