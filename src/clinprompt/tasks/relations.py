"""Relation extraction as text to text: one question per entity pair, or the record's triples.

**Per-pair classification** (the default for entities given: ``spec.pair_classification`` and a
label set, not ``joint``). The model answers one *unit* per ORDERED pair (head, tail) of distinct
given entities (:meth:`RETask.units`) — or, when the spec lists ``pair_types`` (the (head type,
tail type) signatures its relations can have, e.g. Drug → AdverseEffect and Drug → Dose),
one per ordered pair of those types; every other pair is `none` without asking the model. A unit
marks the pair before the text, so truncating a long text never cuts the question off::

    Head: ketoconazole (Drug)
    Tail: hepatotoxicity (AdverseEffect)
    Text: Severe hepatotoxicity developed after ketoconazole.

and its target is the label of the relation head → tail, written as a lower-case word
(:func:`label_words`: ``has_dose`` → ``has dose``, ``INHIBITOR`` → ``inhibitor``; raw labels when
two would read the same), or ``none``. The instruction (:meth:`RETask.instruction`) is the spec's,
followed by the question and the label words. :meth:`RETask.candidates` of a unit are the label
words and ``none``: a few tokens each, ranked by their summed log-likelihood (the probability
of the whole answer, which training maximises; candidates of similar length, so no length
normalisation is needed — the old ``none`` vs ``head [label] tail`` strings differed by tens of
tokens). :meth:`RETask.merge` turns the units' labels back into the record's relations (one per
ordered pair not answered ``none``); a record with fewer than two entities has no units and
predicts no relations without asking the model. Several gold labels on one ordered pair keep the
first in the spec's label order; a relation of an entity with itself has no unit. Both are rare:
of the registered real datasets' relations, only 4 of biored_re's 6,503 are lost (relations of an
entity with itself; counted in the tests).

**Record formulation** (``joint`` datasets, specs without labels, ``pair_classification``
False). The input lists the entities, then the text::

    Entities: AdverseEffect: hepatotoxicity | Drug: ketoconazole
    Text: Severe hepatotoxicity developed after ketoconazole.

and the target lists ``head [type] tail`` triples joined by `` ; `` (``none`` when empty)::

    ketoconazole [causes] hepatotoxicity

It is generated. Entities are named by *handles*: the mention text (``text[start:end]``); when
several entities share a mention text, the first (in text order: start, longer first, type, id)
keeps the bare text and the n-th becomes ``mention #n`` (n raised further if that string is
taken), so every handle names one entity id and the round trip is exact. Triples are ordered by
the head's then the tail's position in the entity list. A generated name that is not a handle
falls back to the first entity whose mention text equals it (then case-insensitively): ambiguous
mentions resolve to the first. A per-pair prediction is rendered the same way
(:meth:`RETask.format_target` of the merged record), so it reads and parses as triples.

Joint datasets (``spec.joint``) take the text alone and generate the entities in the NER format
(:mod:`clinprompt.tasks.ner`), a line ``Relations: ``, then the triples over those entities.
Entity types for validation may be listed in ``spec.entity_types``.

Metric (both formulations, over input records): micro F1 over (head span, tail span, type)
triples (the positive-class F1 for pair datasets).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from clinprompt.tasks.base import (
    TEMPLATE_VERSION,
    UNPARSEABLE,
    Parsed,
    Problem,
    TaskType,
    register_task_type,
)
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
    "PAIR",
    "PAIR_INSTRUCTION",
    "REL_SEP",
    "RELATIONS_CUE",
    "RETask",
    "entity_handles",
    "format_relations",
    "label_words",
    "pairwise",
    "parse_relations",
]

REL_SEP = " ; "
RELATIONS_CUE = "\nRelations: "
_BRACKET = re.compile(r"(?= \[([^\[\]\n]+)\] )")
_CUE = re.compile(r"\n\s*relations:[ \t]?", re.IGNORECASE)
_MAX_GLUE = 8  # pieces one triple may span when mentions contain " ; "
# A unit's field naming its ordered pair: {"head": entity id, "tail": entity id}.
PAIR = "pair"
PAIR_INSTRUCTION = "Read the text and give the relation from the head entity to the tail entity."


def pairwise(spec: TaskSpec) -> bool:
    """Whether ``spec`` is answered per ordered entity pair (see the module docstring)."""
    return not spec.joint and spec.pair_classification and bool(spec.labels)


def label_words(labels: Sequence[str]) -> dict[str, str]:
    """Label → the word a unit answers with: lower case, ``_`` as a space (``has_dose`` → ``has dose``).

    Words tokenize like ordinary text (``INHIBITOR`` is 5 sub-word tokens, ``inhibitor`` one), so
    the candidates of a unit are a few tokens each. Labels that would read the same as each other
    or as ``none`` keep their raw text (all of them, so the mapping stays one to one).
    """
    words = {label: " ".join(label.replace("_", " ").split()).lower() for label in labels}
    readable = [w for w in words.values() if w]
    if (
        len(set(readable)) < len(labels)
        or NONE in readable
        or any(label.lower() == NONE for label in labels)
    ):
        return {label: label for label in labels}
    return words


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
    empty_answer = NONE

    def validate(self, record: dict[str, Any], spec: TaskSpec | None = None) -> list[Problem]:
        problems: list[Problem] = []
        check_id(record, problems)
        check_entities(
            record,
            problems,
            labels=spec.entity_types if spec else (),
            need_ids=True,
        )
        entities = record.get("entities")
        types = {  # entity id -> type; ids that are not strings never match a relation's end
            e["id"]: e.get("type")
            for e in (entities if isinstance(entities, list) else [])
            if isinstance(e, dict) and isinstance(e.get("id"), str)
        }
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
                if not isinstance(rel.get(end), str) or rel.get(end) not in types:
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
            ends = (rel.get("head"), rel.get("tail"))
            if spec and spec.pair_types and all(isinstance(x, str) and x in types for x in ends):
                signature = (types[ends[0]], types[ends[1]])
                if signature not in spec.pair_types:
                    allowed = ", ".join(f"{h} -> {t}" for h, t in spec.pair_types)
                    problems.append(
                        Problem(
                            f,
                            f"a relation {signature[0]} -> {signature[1]}, but the task's "
                            f"pair_types allow only {allowed}: add [{signature[0]}, "
                            f"{signature[1]}] to pair_types, or drop the relation",
                        )
                    )
        return problems

    def instruction(self, spec: TaskSpec) -> str:
        """The spec's instruction; per pair, followed by the question and the label words.

        A fixed point: a spec whose instruction is already this text (what banks and adapters
        record as the instruction they were trained with, and evaluation and the server read
        back) gets it unchanged, so the question is never asked twice.
        """
        if not pairwise(spec):
            return super().instruction(spec)
        words = ", ".join(label_words(spec.labels).values())
        question = (
            f"Answer with the relation from the head entity to the tail entity: {words}, or {NONE}."
        )
        base = spec.instruction or PAIR_INSTRUCTION
        return base if base.endswith(question) else f"{base} {question}"

    def template_version(self, spec: TaskSpec) -> str:
        # v1 asked for every relation of a record at once; per-pair units are a new text.
        return f"{TEMPLATE_VERSION}-pairs" if pairwise(spec) else TEMPLATE_VERSION

    def formulation(self, spec: TaskSpec) -> str:
        if spec.joint:
            return "joint extraction: entities and relations generated"
        if pairwise(spec):
            return (
                "per ordered entity pair: classification over the label words and `none` "
                "(option scoring, summed log-probabilities), merged per record"
            )
        return "generation of `head [label] tail` triples over the given entities"

    def units(self, record: dict[str, Any], spec: TaskSpec) -> list[dict[str, Any]]:
        """Per pair: one unit per ordered pair of distinct given entities (head-major, in entity
        order) whose types are among ``spec.pair_types`` (every pair when that is empty), the
        record plus :data:`PAIR`; none below two entities. Otherwise the record.
        A unit is its own only unit (so expanding twice is expanding once)."""
        if not pairwise(spec) or PAIR in record:
            return [record]
        text = record.get("text")
        given = (
            [e for _, e in entity_handles(text, record.get("entities"))]
            if isinstance(text, str)
            else []
        )
        allowed = set(spec.pair_types)
        return [
            {**record, PAIR: {"head": head["id"], "tail": tail["id"]}}
            for head in given
            for tail in given
            if head["id"] != tail["id"]
            and (not allowed or (head.get("type"), tail.get("type")) in allowed)
        ]

    def merge(self, record: dict[str, Any], units: list[Parsed], spec: TaskSpec) -> Parsed:
        """Per pair: the record with the relations of its units (one per non-``none`` pair); ok
        when every unit's answer was understood. No units: no relations."""
        if not pairwise(spec):
            return super().merge(record, units, spec)
        relations: list[dict[str, str]] = []
        for unit in units:
            for rel in unit.prediction.get("relations") or []:
                if rel not in relations:
                    relations.append(dict(rel))
        return prediction(
            record, {"relations": relations}, all(u.ok for u in units), drop=("relations",)
        )

    def format_input(self, record: dict[str, Any], spec: TaskSpec) -> str:
        if spec.joint:
            return record["text"]
        if PAIR in record and pairwise(spec):
            named = {e["id"]: (h, e) for h, e in entity_handles(record["text"], record["entities"])}
            (head, h_ent), (tail, t_ent) = (named[record[PAIR][end]] for end in ("head", "tail"))
            return (
                f"Head: {head} ({h_ent['type']})\nTail: {tail} ({t_ent['type']})\n"
                f"Text: {record['text']}"
            )
        listed = SEP.join(
            f"{ent['type']}: {h}"
            for h, ent in entity_handles(record["text"], record.get("entities"))
        )
        return f"Entities: {listed or NONE}\nText: {record['text']}"

    def format_target(self, record: dict[str, Any], spec: TaskSpec) -> str:
        text, entities = record["text"], record.get("entities")
        if PAIR in record and pairwise(spec):
            pair = record[PAIR]
            found = {
                r.get("type")
                for r in record.get("relations") or []
                if isinstance(r, dict)
                and (r.get("head"), r.get("tail")) == (pair["head"], pair["tail"])
            }
            words = label_words(spec.labels)
            return next((words[label] for label in spec.labels if label in found), NONE)
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
            if PAIR in record and pairwise(spec):
                return self._parse_unit(text, record, spec)
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

    @staticmethod
    def _parse_unit(text: str, unit: dict[str, Any], spec: TaskSpec) -> Parsed:
        """A unit's answer: a label word (or raw label, any case), or ``none``."""
        answer = " ".join(text.strip().rstrip(".").split()).lower()
        if answer == NONE:
            return prediction(unit, {"relations": []}, True, drop=("relations",))
        words = label_words(spec.labels)
        label = next((lb for lb in spec.labels if answer in (words[lb].lower(), lb.lower())), None)
        rels = [] if label is None else [{**unit[PAIR], "type": label}]
        return prediction(unit, {"relations": rels}, label is not None, drop=("relations",))

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
        """Per pair: the label words and ``none`` (every unit of the spec has these; a whole
        record is answered through its units). Otherwise None: generate."""
        if not pairwise(spec):
            return None
        return [*label_words(spec.labels).values(), NONE]


register_task_type(RETask())
