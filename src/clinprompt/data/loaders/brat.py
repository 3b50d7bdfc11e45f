"""BRAT standoff (a folder of ``<doc>.txt`` / ``<doc>.ann`` pairs; the n2c2 2018 / 2022 format).

``.ann`` lines, tab-separated:

* ``T<n>  <Type> <start> <end>[;<start> <end>...]  <mention>`` — a text-bound entity; offsets are
  character offsets into the ``.txt`` exactly as stored (``\\r\\n`` counts two characters). The
  mention must equal the fragments joined by one space (line breaks inside a span read as spaces).
* ``R<n>  <Type> Arg1:T<a> Arg2:T<b>`` — a relation, head = the first argument, tail = the second.
* ``E`` (events), ``A``/``M`` (attributes), ``N`` (normalisations), ``*`` (equivalences) and ``#``
  (notes) are ignored (their count is logged); any other line is an error.

**Discontinuous entities** (``start end;start end``) follow ``discontinuous``: ``"span"`` (default)
gives the covering span from the first start to the last end (``text`` = the covered text,
``fragments`` = the parts, ``mention`` = the annotated string); ``"first"`` keeps the first
fragment only; ``"error"`` raises.

Records are per document (id = file stem) or, with ``unit="sentence"``, per sentence (id
``<stem>-s<n>``): cuts at line breaks and after ``. ! ?`` + capitalised word, never inside an
entity, and for ``re`` never between the two arguments of a relation (such sentences are merged).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, decode_text, read_text
from clinprompt.data.loaders._text import cut_record, sentence_spans
from clinprompt.data.spec import Records

__all__ = ["load_brat", "read_brat_document"]

log = logging.getLogger(__name__)
IGNORED = ("E", "A", "M", "N", "#", "*")
DISCONTINUOUS = ("span", "first", "error")
UNITS = ("document", "sentence")


def _entity(
    path: Path, number: int, fields: list[str], text: str, discontinuous: str
) -> dict[str, Any]:
    if len(fields) != 3:
        raise NativeFormatError(
            path,
            number,
            None,
            "expected 'T<n><TAB><Type> <start> <end>[;<start> <end>]<TAB><mention>'",
        )
    tid, spec, mention = fields
    etype, _, offsets = spec.partition(" ")
    frags = []
    for part in offsets.split(";"):
        pair = part.split()
        if not etype or len(pair) != 2 or not pair[0].isdigit() or not pair[1].isdigit():
            raise NativeFormatError(
                path, number, tid, f"expected '<Type> <start> <end>[;<start> <end>]', got {spec!r}"
            )
        start, end = int(pair[0]), int(pair[1])
        if not (0 <= start < end <= len(text)):
            raise NativeFormatError(
                path,
                number,
                tid,
                f"offsets {start} {end} fall outside the text ({len(text)} characters)",
            )
        frags.append((start, end))
    frags.sort()
    covered = (
        " ".join(text[s:e] for s, e in frags)
        .replace("\r\n", " ")
        .replace("\n", " ")
        .replace("\r", " ")
    )
    if covered != mention.replace("\r", " "):
        raise NativeFormatError(
            path,
            number,
            tid,
            f"the text at {offsets!r} is {covered!r}, expected the mention {mention!r}",
        )
    if len(frags) > 1 and discontinuous == "error":
        raise NativeFormatError(
            path,
            number,
            tid,
            f"discontinuous entity {offsets!r} (set discontinuous to 'span' or 'first')",
        )
    if len(frags) > 1 and discontinuous == "first":
        frags = frags[:1]
    start, end = frags[0][0], frags[-1][1]
    entity: dict[str, Any] = {
        "id": tid,
        "start": start,
        "end": end,
        "type": etype,
        "text": text[start:end],
        "line": number,
    }
    if len(frags) > 1:
        entity["fragments"] = [list(f) for f in frags]
        entity["mention"] = mention
    return entity


def _relation(path: Path, number: int, fields: list[str]) -> dict[str, Any]:
    parts = fields[1].split() if len(fields) >= 2 else []
    if len(parts) != 3 or any(":" not in p for p in parts[1:]):
        raise NativeFormatError(path, number, fields[0], "expected '<Type> Arg1:T<a> Arg2:T<b>'")
    return {
        "head": parts[1].split(":", 1)[1],
        "tail": parts[2].split(":", 1)[1],
        "type": parts[0],
        "line": number,
        "rid": fields[0],
    }


def read_brat_document(
    txt: Path, discontinuous: str = "span"
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]], Counter[str]]:
    """The text, entities (with T ids), relations (with line numbers) and ignored-line counts of one pair."""
    ann = txt.with_suffix(".ann")
    if not ann.is_file():
        raise FileNotFoundError(f"{ann}: expected the annotation file of {txt.name}; it is missing")
    text = read_text(txt)
    entities: dict[str, dict[str, Any]] = {}
    relations: list[dict[str, Any]] = []
    ignored: Counter[str] = Counter()
    for number, line in enumerate(decode_text(ann.read_bytes(), ann).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        kind = fields[0][:1]
        if kind == "T":
            entity = _entity(ann, number, fields, text, discontinuous)
            if entity["id"] in entities:
                raise NativeFormatError(ann, number, entity["id"], "this entity id is used twice")
            entities[entity["id"]] = entity
        elif kind == "R":
            relations.append(_relation(ann, number, fields))
        elif kind in IGNORED:
            ignored[kind] += 1
        else:
            raise NativeFormatError(
                ann, number, None, f"expected a T, R, E, A, M, N, * or # line, got {line[:40]!r}"
            )
    for r in relations:
        for arg in ("head", "tail"):
            if r[arg] not in entities:
                raise NativeFormatError(
                    ann, r["line"], r["rid"], f"argument {r[arg]!r} is not a T entity of this file"
                )
    return text, list(entities.values()), relations, ignored


def load_brat(
    folder: str | Path,
    task_type: str = "ner",
    unit: str = "document",
    discontinuous: str = "span",
    labels: Collection[str] | None = None,
    entity_types: Collection[str] | None = None,
) -> Records:
    """Records (ner or re) from a folder of BRAT ``.txt``/``.ann`` pairs (sorted by file name).

    Args:
        folder: the folder; every ``.txt`` needs its ``.ann`` (an empty ``.ann`` is allowed).
        task_type: ``ner`` (entities) or ``re`` (entities with ids + relations).
        unit: ``document`` or ``sentence`` (see the module docstring).
        discontinuous: ``span``, ``first`` or ``error`` (see the module docstring).
        labels: when given, every entity type (ner) or relation type (re) must be one of them.
        entity_types: keep only entities of these types (and the relations between them).
    """
    folder = Path(folder)
    if task_type not in ("ner", "re"):
        raise ValueError(f"BRAT gives ner or re records, not {task_type!r}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if discontinuous not in DISCONTINUOUS:
        raise ValueError(f"discontinuous must be one of {DISCONTINUOUS}, got {discontinuous!r}")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: expected a folder of BRAT .txt/.ann files; it is missing"
        )
    texts = sorted(folder.glob("*.txt"))
    if not texts:
        raise FileNotFoundError(f"{folder}: expected BRAT .txt/.ann pairs; found no .txt file")
    orphans = sorted(a.name for a in folder.glob("*.ann") if not a.with_suffix(".txt").is_file())
    if orphans:
        raise FileNotFoundError(f"{folder / orphans[0]}: an annotation file without its .txt")
    records: Records = []
    ignored_total: Counter[str] = Counter()
    for txt in texts:
        text, entities, relations, ignored = read_brat_document(txt, discontinuous)
        ignored_total.update(ignored)
        ann = txt.with_suffix(".ann")
        if entity_types is not None:
            entities = [e for e in entities if e["type"] in entity_types]
        kept = {e["id"]: e for e in entities}
        relations = [r for r in relations if r["head"] in kept and r["tail"] in kept]
        if labels is not None:
            for item, what in (
                [(e, "entity type") for e in entities]
                if task_type == "ner"
                else [(r, "relation type") for r in relations]
            ):
                if item["type"] not in labels:
                    line = item.get("line", "")
                    raise NativeFormatError(
                        ann,
                        line,
                        item.get("rid", item.get("id")),
                        f"{what} {item['type']!r} is not one of the labels {sorted(labels)}",
                    )
        entities.sort(key=lambda e: (e["start"], e["end"], e["id"]))
        record: dict[str, Any] = {"id": txt.stem, "text": text, "entities": entities}
        drop = ("line",) if task_type == "re" else ("line", "id")
        record["entities"] = [{k: v for k, v in e.items() if k not in drop} for e in entities]
        if task_type == "re":
            record["relations"] = [
                {"head": r["head"], "tail": r["tail"], "type": r["type"]} for r in relations
            ]
        if unit == "document":
            records.append(record)
            continue
        protected = [(e["start"], e["end"]) for e in entities]
        protected += [
            (
                min(kept[r["head"]]["start"], kept[r["tail"]]["start"]),
                max(kept[r["head"]]["end"], kept[r["tail"]]["end"]),
            )
            for r in relations
        ]
        records.extend(cut_record(record, sentence_spans(text, protected, split_lines=True)))
    if ignored_total:
        log.info(
            "BRAT %s: ignored %s lines (events, attributes, normalisations, equivalences, notes)",
            folder,
            ", ".join(f"{n} {k}" for k, n in sorted(ignored_total.items())),
        )
    return records
