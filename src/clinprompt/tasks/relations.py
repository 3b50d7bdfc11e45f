"""Relation extraction as text to text.

Entities are given (unless the dataset is ``joint``): the input lists them, then the text::

    Entities: AdverseEffect: hepatotoxicity | Drug: ketoconazole
    Text: Severe hepatotoxicity developed after ketoconazole.

and the target lists ``head [type] tail`` triples joined by `` ; `` (``none`` when empty)::

    ketoconazole [causes] hepatotoxicity

Entities are named by *handles*: the mention text (``text[start:end]``); when several entities
share a mention text, the first (in text order: start, longer first, type, id) keeps the bare text
and the n-th becomes ``mention #n`` (n raised further if that string is taken), so every handle
names one entity id and the round trip is exact. Triples are ordered by the head's then the tail's
position in the entity list. A generated name that is not a handle falls back to the first entity
whose mention text equals it (then case-insensitively): ambiguous mentions resolve to the first.

Joint datasets (``spec.joint``) take the text alone and generate the entities in the NER format
(:mod:`clinprompt.tasks.ner`), a line ``Relations: ``, then the triples over those entities.
Entity types for validation may be listed in ``spec.entity_types``.

Pair classification (two marked entities, zero or one relation: chemprot, euadr, DDI pairs) is
the same record and the same code; :meth:`RETask.candidates` then returns ``none`` and every
``head [label] tail`` string (both directions) for likelihood scoring. Metric: micro F1 over
(head span, tail span, type) triples (the positive-class F1 for pair classification).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from clinprompt.tasks.base import UNPARSEABLE, Parsed, Problem, TaskType, register_task_type
from clinprompt.tasks.floors import Floor, with_fields
from clinprompt.tasks.metrics import entity_f1, relation_f1
from clinprompt.tasks.ner import (
    NONE,
    SEP,
    entity_spans,
    format_entities,
    parse_entities,
    valid_entity,
)
from clinprompt.tasks.records import (
    MISSING,
    check_entities,
    check_id,
    check_label,
    describe,
    prediction,
)
from clinprompt.tasks.spec import TaskSpec

__all__ = [
    "REL_SEP",
    "RELATIONS_CUE",
    "RETask",
    "entity_handles",
    "format_relations",
    "parse_relations",
]

REL_SEP = " ; "
RELATIONS_CUE = "\nRelations: "
_BRACKET = re.compile(r"(?= \[([^\[\]\n]+)\] )")
_CUE = re.compile(r"\n\s*relations:[ \t]?", re.IGNORECASE)
_MAX_GLUE = 8  # pieces one triple may span when mentions contain " ; "


def entity_handles(text: str, entities: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(handle, entity)`` for the well-formed entities with ids, in target order (see module)."""
    by_id: dict[str, dict[str, Any]] = {}
    for ent in entities if isinstance(entities, list) else []:
        if valid_entity(ent, text) and isinstance(ent.get("id"), str):
            by_id.setdefault(ent["id"], ent)
    ordered = sorted(by_id.values(), key=lambda e: (e["start"], -e["end"], e["type"], e["id"]))
    bases = {text[e["start"] : e["end"]] for e in ordered}
    used: set[str] = set()
    counts: Counter[str] = Counter()
    out = []
    for ent in ordered:
        base = text[ent["start"] : ent["end"]]
        counts[base] += 1
        handle, k = base, max(counts[base], 2)
        if counts[base] > 1 or base in used:
            while f"{base} #{k}" in used or f"{base} #{k}" in bases:
                k += 1
            handle = f"{base} #{k}"
        used.add(handle)
        out.append((handle, ent))
    return out


def format_relations(
    handles: list[tuple[str, dict[str, Any]]], relations: Any, alias: dict[str, str] | None = None
) -> str:
    """``head [type] tail ; ...`` (or ``none``) over entity ``handles``; ``alias`` maps merged ids."""
    alias = alias or {}
    rank = {ent["id"]: (i, h) for i, (h, ent) in enumerate(handles)}
    triples = set()
    for rel in relations if isinstance(relations, list) else []:
        if not isinstance(rel, dict) or not isinstance(rel.get("type"), str):
            continue
        head, tail = (
            alias.get(rel.get("head"), rel.get("head")),
            alias.get(rel.get("tail"), rel.get("tail")),
        )
        if head in rank and tail in rank:
            triples.add((rank[head], rank[tail], rel["type"]))
    return REL_SEP.join(f"{h[1]} [{t}] {tl[1]}" for h, tl, t in sorted(triples)) or NONE


_Index = list[dict[str, dict[str, Any]]]


def _index(handles: list[tuple[str, dict[str, Any]]], text: str) -> _Index:
    """Name → entity tables in lookup priority: handle, handle stripped, handle case-folded, mention,
    mention case-folded (stripped); within a table the first entity in target order wins."""
    tables: _Index = [{}, {}, {}, {}, {}]
    for handle, ent in handles:
        mention = text[ent["start"] : ent["end"]]
        keys = (
            handle,
            handle.strip(),
            handle.strip().lower(),
            mention.strip(),
            mention.strip().lower(),
        )
        for table, key in zip(tables, keys, strict=True):
            table.setdefault(key, ent)
    return tables


def _lookup(name: str, index: _Index) -> dict[str, Any] | None:
    stripped = name.strip()
    for table, key in zip(
        index, (name, stripped, stripped.lower(), stripped, stripped.lower()), strict=True
    ):
        ent = table.get(key)
        if ent is not None:
            return ent
    if stripped.endswith("."):  # a generation that ends its last triple with a full stop
        return _lookup(stripped[:-1], index)
    return None


def _label(name: str, labels: Sequence[str]) -> str | None:
    if not labels:
        return name.strip() or None
    if name in labels:
        return name
    return next((label for label in labels if label.lower() == name.strip().lower()), None)


def _triple(chunk: str, index: _Index, labels: Sequence[str]) -> tuple[str, str, str] | None:
    for m in _BRACKET.finditer(chunk):
        rtype = _label(m.group(1), labels)
        if rtype is None:
            continue
        head = _lookup(chunk[: m.start()], index)
        tail = _lookup(chunk[m.start() + len(m.group(1)) + 4 :], index)
        if head is not None and tail is not None:
            return head["id"], tail["id"], rtype
    return None


def parse_relations(
    output: str, handles: list[tuple[str, dict[str, Any]]], text: str, labels: Sequence[str] = ()
) -> tuple[list[dict[str, str]], bool]:
    """Relations ``{"head", "tail", "type"}`` (entity ids) from generated triples; never raises.

    Returns:
        The relations and whether every chunk of ``output`` was understood.
    """
    output = output.strip()
    if output.lower().rstrip(".") == NONE:
        return [], True
    if not output:
        return [], False
    index = _index(handles, text)
    pieces, relations, seen, ok, i = output.split(REL_SEP), [], set(), True, 0
    while i < len(pieces):
        # Longest glue first: a mention may itself contain " ; ".
        for j in range(min(len(pieces), i + _MAX_GLUE) - 1, i - 1, -1):
            triple = _triple(REL_SEP.join(pieces[i : j + 1]), index, labels)
            if triple is not None:
                if triple not in seen:
                    seen.add(triple)
                    relations.append({"head": triple[0], "tail": triple[1], "type": triple[2]})
                i = j + 1
                break
        else:
            ok, i = False, i + 1
    return relations, ok


def _joint_entities(
    output: str, record: dict[str, Any], spec: TaskSpec
) -> tuple[list[dict[str, Any]], bool]:
    text = record.get("text", "")
    entities, ok = parse_entities(output, text, spec.entity_types)
    gold_ids: dict[
        tuple[int, int, str], str
    ] = {}  # the smallest id per span, as the formatter keeps
    for _, e in entity_handles(text, record.get("entities")):
        gold_ids.setdefault((e["start"], e["end"], e["type"]), e["id"])
    taken = set(gold_ids.values())
    for n, ent in enumerate(entities, start=1):
        eid = gold_ids.get((ent["start"], ent["end"], ent["type"]))
        if eid is None:
            eid = f"P{n}"
            while eid in taken:
                eid += "'"
        taken.add(eid)
        ent["id"] = eid
    return entities, ok


def _triples(
    record: dict[str, Any], fallback: Any = None
) -> tuple[set[tuple[Any, Any, str]], bool]:
    spans: dict[Any, tuple[int, int]] = {}
    for ents in (fallback, record.get("entities")):
        for e in ents if isinstance(ents, list) else []:
            if valid_entity(e) and isinstance(e.get("id"), str):
                spans[e["id"]] = (e["start"], e["end"])
    rels = record.get("relations")
    if not isinstance(rels, list):
        return set(), False
    out, clean = set(), True
    for r in rels:
        if (
            isinstance(r, dict)
            and isinstance(r.get("type"), str)
            and r.get("head") in spans
            and r.get("tail") in spans
        ):
            out.add((spans[r["head"]], spans[r["tail"]], r["type"]))
        else:
            clean = False
    return out, clean


class RETask(TaskType):
    """Relation extraction: ``text`` + ``entities`` → ``relations``; micro triple F1."""

    name = "re"
    default_instruction = (
        "List every relation between the given entities as head [relation] tail, "
        "separated by ' ; '. Answer none if there is none."
    )
    max_new_tokens = 96

    def validate(self, record: dict[str, Any], spec: TaskSpec | None = None) -> list[Problem]:
        problems: list[Problem] = []
        check_id(record, problems)
        check_entities(
            record,
            problems,
            labels=spec.entity_types if spec else (),
            need_ids=True,
        )
        ids = {e.get("id") for e in record.get("entities") or [] if isinstance(e, dict)}
        relations = record.get("relations", MISSING)
        if not isinstance(relations, list):
            problems.append(
                Problem(
                    "relations",
                    f"expected a list of relation objects (may be empty), got {describe(relations)}",
                )
            )
            return problems
        for i, rel in enumerate(relations):
            f = f"relations[{i}]"
            if not isinstance(rel, dict):
                problems.append(
                    Problem(f, f"expected an object with head, tail, type, got {describe(rel)}")
                )
                continue
            for end in ("head", "tail"):
                if not isinstance(rel.get(end), str) or rel.get(end) not in ids:
                    problems.append(
                        Problem(
                            f"{f}.{end}",
                            f"expected the id of one of the record's entities, got {describe(rel.get(end, MISSING))}",
                        )
                    )
            check_label(
                rel.get("type", MISSING),
                f"{f}.type",
                spec.labels if spec else (),
                problems,
                what="relation type",
            )
        return problems

    def format_input(self, record: dict[str, Any], spec: TaskSpec) -> str:
        if spec.joint:
            return record["text"]
        listed = SEP.join(
            f"{ent['type']}: {h}"
            for h, ent in entity_handles(record["text"], record.get("entities"))
        )
        return f"Entities: {listed or NONE}\nText: {record['text']}"

    def format_target(self, record: dict[str, Any], spec: TaskSpec) -> str:
        text, entities = record["text"], record.get("entities")
        if not spec.joint:
            return format_relations(entity_handles(text, entities), record.get("relations"))
        # Entities that share (start, end, type) appear once; relations follow the kept one.
        kept: dict[tuple[int, int, str], dict[str, Any]] = {}
        alias: dict[str, str] = {}
        for _, ent in entity_handles(text, entities):
            alias[ent["id"]] = kept.setdefault((ent["start"], ent["end"], ent["type"]), ent)["id"]
        handles = entity_handles(text, list(kept.values()))
        return f"{format_entities(text, entities)}{RELATIONS_CUE}{format_relations(handles, record.get('relations'), alias)}"

    def parse(self, text: str, record: dict[str, Any], spec: TaskSpec) -> Parsed:
        try:
            source = record.get("text", "")
            if not spec.joint:
                rels, ok = parse_relations(
                    text, entity_handles(source, record.get("entities")), source, spec.labels
                )
                return prediction(record, {"relations": rels}, ok, drop=("relations",))
            cue = list(_CUE.finditer(text))
            ent_part, rel_part = (
                (text[: cue[-1].start()], text[cue[-1].end() :]) if cue else (text, "")
            )
            entities, ok = _joint_entities(ent_part, record, spec)
            rels, rel_ok = parse_relations(
                rel_part, entity_handles(source, entities), source, spec.labels
            )
            return prediction(
                record,
                {"entities": entities, "relations": rels},
                ok and rel_ok and bool(cue),
                drop=("entities", "relations"),
            )
        except Exception:  # never raise on a generation
            return prediction(
                record,
                {"relations": []} if not spec.joint else {"entities": [], "relations": []},
                False,
                drop=("relations",) if not spec.joint else ("entities", "relations"),
            )

    def score(
        self, golds: list[dict[str, Any]], preds: list[dict[str, Any] | None], spec: TaskSpec
    ) -> dict[str, float]:
        gold_triples = [_triples(g)[0] for g in golds]
        pred_triples, missing, unparseable = [], 0, 0
        for gold, pred in zip(golds, preds, strict=True):
            if pred is None:
                missing += 1
                pred_triples.append(set())
                continue
            triples, clean = _triples(pred, None if spec.joint else gold.get("entities"))
            unparseable += bool(pred.get(UNPARSEABLE)) or not clean
            pred_triples.append(triples)
        out: dict[str, float] = dict(relation_f1(gold_triples, pred_triples))
        if spec.joint:
            gold_ents = [entity_spans(g.get("entities"))[0] for g in golds]
            pred_ents = [entity_spans(p.get("entities"))[0] if p else [] for p in preds]
            out.update(
                {
                    f"entity_strict_{k}": v
                    for k, v in entity_f1(gold_ents, pred_ents, "strict").items()
                }
            )
            out.update(
                {
                    f"entity_lenient_{k}": v
                    for k, v in entity_f1(gold_ents, pred_ents, "lenient").items()
                }
            )
        return {**out, "n": len(golds), "missing": missing, "unparseable": unparseable}

    def primary_metric(self, spec: TaskSpec) -> str:
        return "f1"

    def input_fields(self, spec: TaskSpec) -> dict[str, tuple[type, bool]]:
        """The text, and the given entities (optional for a joint task, which extracts them)."""
        return {"text": (str, True), "entities": (list, not spec.joint)}

    def floor(
        self, records: list[dict[str, Any]], reference: list[dict[str, Any]] | None, spec: TaskSpec
    ) -> Floor:
        """No relations (and, for a joint task, no entities)."""
        fields: dict[str, Any] = {"relations": []}
        if spec.joint:
            fields["entities"] = []
        return Floor("empty", "no relations", [with_fields(r, **fields) for r in records])

    def candidates(self, record: dict[str, Any], spec: TaskSpec) -> list[str] | None:
        """For a pair record (two entities, labels listed, not joint): ``none`` + every triple."""
        if spec.joint or not spec.labels or not spec.pair_classification:
            return None
        handles = entity_handles(record.get("text", ""), record.get("entities"))
        if len(handles) != 2:
            return None
        (a, _), (b, _) = handles
        return [NONE] + [f"{h} [{label}] {t}" for label in spec.labels for h, t in ((a, b), (b, a))]


register_task_type(RETask())
