"""Text helpers for loaders: a conservative sentence splitter that never cuts a protected span,
and cutting a document record into sentence records with shifted offsets."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["cut_record", "merge_intervals", "sentence_spans"]

# End of a sentence: . ! or ? (optionally closed by a quote/bracket) followed by whitespace and an
# upper-case letter, a digit or an opening bracket/quote. Lower-case continuations ("e.g. the",
# "vs. placebo") are never boundaries.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s+[A-Z0-9(\[\"'])")
_NEWLINES = re.compile(r"\n")


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged ``[start, end)`` intervals (touching intervals are not merged)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def sentence_spans(
    text: str, protected: Iterable[tuple[int, int]] = (), split_lines: bool = False
) -> list[tuple[int, int]]:
    """``[start, end)`` of each sentence of ``text``, whitespace trimmed, empty ones dropped.

    A cut is made after sentence-final punctuation followed by a capitalised word (and at every
    newline when ``split_lines``), but never strictly inside a ``protected`` interval (entity
    mentions; for relation extraction, the extent of each relation), so every protected span lies
    inside one sentence.
    """
    guard = merge_intervals(protected)
    cuts = {m.end() for m in _SENTENCE_END.finditer(text)}
    if split_lines:
        cuts |= {m.end() for m in _NEWLINES.finditer(text)}
    allowed = sorted(c for c in cuts if not any(s < c < e for s, e in guard))
    spans = []
    start = 0
    for cut in [*allowed, len(text)]:
        segment = text[start:cut]
        stripped = segment.strip()
        if stripped:
            lead = len(segment) - len(segment.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
        start = cut
    return spans


def cut_record(
    record: dict[str, Any], spans: Sequence[tuple[int, int]], id_format: str = "{id}-s{index}"
) -> list[dict[str, Any]]:
    """Split an ner/re record (``text``, ``entities``, optional ``relations``) at ``spans``.

    Each entity goes to the span that contains it (it must be contained in one: build ``spans``
    with the entities protected); a relation goes with its head entity and must have its tail in
    the same span. Offsets are shifted; all other top-level fields are copied.
    """
    text = record["text"]
    entities = record.get("entities", [])
    by_id = {e["id"]: e for e in entities if "id" in e}
    out = []
    for index, (start, end) in enumerate(spans):
        inside = [e for e in entities if start <= e["start"] and e["end"] <= end]
        piece = {
            k: v for k, v in record.items() if k not in ("id", "text", "entities", "relations")
        }
        piece["id"] = id_format.format(id=record["id"], index=index)
        piece["text"] = text[start:end]
        piece["entities"] = [_shift(e, start) for e in inside]
        if "relations" in record:
            ids = {e["id"] for e in inside if "id" in e}
            piece["relations"] = [r for r in record["relations"] if r["head"] in ids]
            for r in piece["relations"]:
                if r["tail"] not in ids:
                    tail = by_id[r["tail"]]
                    raise ValueError(
                        f"relation {r} crosses a sentence boundary at {end} (tail at {tail['start']})"
                    )
        out.append(piece)
    placed = sum(len(p["entities"]) for p in out)
    if placed != len(entities):
        raise ValueError(
            f"{len(entities) - placed} entities of record {record['id']!r} straddle the sentence spans"
        )
    return out


def _shift(entity: dict[str, Any], offset: int) -> dict[str, Any]:
    moved = dict(entity, start=entity["start"] - offset, end=entity["end"] - offset)
    if "fragments" in entity:
        moved["fragments"] = [[s - offset, e - offset] for s, e in entity["fragments"]]
    if "mentions" in entity:
        moved["mentions"] = [[s - offset, e - offset] for s, e in entity["mentions"]]
    return moved
