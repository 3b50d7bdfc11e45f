"""BioRED in PubTator format (``biored_ner``, ``biored_re``).

PubTator document: ``PMID|t|title``, ``PMID|a|abstract``, then mention lines
``PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>concept ids`` (offsets into ``title + " " +
abstract``; ids comma-separated, ``-`` when unnormalised) and relation lines
``PMID<TAB>type<TAB>id1<TAB>id2<TAB>novelty``; a blank line ends the document.

* ``biored_ner``: one record per sentence (the title, then the abstract cut after
  ``. ! ?`` + capitalised word, never inside a mention), all six entity types. Ids
  ``<PMID>-s<n>``.
* ``biored_re``: BioRED relations hold between *concepts*, at document level, so a record is the
  whole document (``title + " " + abstract``). Each concept is one entity: ``id`` = the concept
  id (e.g. ``D003924``), ``start``/``end``/``text`` = its first mention, ``mentions`` = every
  ``[start, end]``. A mention with several ids belongs to each concept; unnormalised mentions
  (``-``) belong to no concept and are left out of biored_re (they are in biored_ner).
  Relations: ``head`` = id1, ``tail`` = id2, ``type``, and ``novel`` (True for "Novel").
  Ids: the PMID.

Splits: Train/Dev/Test files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, check_mention, dataset_dir, read_text
from clinprompt.data.loaders._text import cut_record, sentence_spans
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records

ENTITY_TYPES = (
    "CellLine",
    "ChemicalEntity",
    "DiseaseOrPhenotypicFeature",
    "GeneOrGeneProduct",
    "OrganismTaxon",
    "SequenceVariant",
)
RELATION_TYPES = (
    "Association",
    "Bind",
    "Comparison",
    "Conversion",
    "Cotreatment",
    "Drug_Interaction",
    "Negative_Correlation",
    "Positive_Correlation",
)
FILES = {"train": "Train.PubTator", "dev": "Dev.PubTator", "test": "Test.PubTator"}


def read_pubtator(path: Path) -> list[dict[str, Any]]:
    """Documents of a PubTator file: ``{pmid, title, text, mentions, relations}`` (checked)."""
    docs: list[dict[str, Any]] = []
    doc: dict[str, Any] | None = None
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            doc = None
            continue
        head = line.split("|", 2)
        if len(head) == 3 and head[1] in ("t", "a") and "\t" not in head[0]:
            pmid, kind, body = head
            if kind == "t":
                doc = {
                    "pmid": pmid,
                    "title": body,
                    "abstract": None,
                    "mentions": [],
                    "relations": [],
                    "line": number,
                }
                docs.append(doc)
            elif doc is None or doc["pmid"] != pmid or doc["abstract"] is not None:
                raise NativeFormatError(
                    path,
                    number,
                    "abstract",
                    f"expected '{pmid}|a|' right after the title line of {pmid}",
                )
            else:
                doc["abstract"] = body
                doc["text"] = f"{doc['title']} {body}"
            continue
        fields = line.split("\t")
        if doc is None or doc["abstract"] is None or fields[0] != doc["pmid"]:
            raise NativeFormatError(
                path,
                number,
                None,
                "expected an annotation line of the current document (after its |t| and |a| lines)",
            )
        if len(fields) == 6:
            _, start, end, mention, etype, ids = fields
            if not start.isdigit() or not end.isdigit():
                raise NativeFormatError(
                    path, number, "start/end", f"expected character offsets, got {start!r}, {end!r}"
                )
            if etype not in ENTITY_TYPES:
                raise NativeFormatError(
                    path,
                    number,
                    "type",
                    f"unknown entity type {etype!r}; expected one of {list(ENTITY_TYPES)}",
                )
            check_mention(doc["text"], int(start), int(end), mention, path, number, "mention")
            doc["mentions"].append(
                {
                    "start": int(start),
                    "end": int(end),
                    "type": etype,
                    "text": mention,
                    "ids": []
                    if ids.strip() == "-"
                    else [i.strip() for i in ids.split(",") if i.strip()],
                }
            )
        elif len(fields) == 5:
            _, rtype, id1, id2, novelty = fields
            if rtype not in RELATION_TYPES:
                raise NativeFormatError(
                    path,
                    number,
                    "type",
                    f"unknown relation type {rtype!r}; expected one of {list(RELATION_TYPES)}",
                )
            doc["relations"].append(
                {
                    "head": id1,
                    "tail": id2,
                    "type": rtype,
                    "novel": novelty == "Novel",
                    "line": number,
                }
            )
        else:
            raise NativeFormatError(
                path,
                number,
                None,
                f"expected 6 (mention) or 5 (relation) tab-separated fields, got {len(fields)}",
            )
    if not docs:
        raise NativeFormatError(
            path, None, None, "expected PubTator documents (PMID|t|title lines)"
        )
    for d in docs:
        if d["abstract"] is None:
            raise NativeFormatError(
                path, d["line"], "abstract", f"document {d['pmid']} has no '|a|' line"
            )
    return docs


def _re_record(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    concepts: dict[str, dict[str, Any]] = {}
    for m in sorted(doc["mentions"], key=lambda m: (m["start"], m["end"])):
        for cid in m["ids"]:
            entity = concepts.setdefault(
                cid,
                {
                    "id": cid,
                    "start": m["start"],
                    "end": m["end"],
                    "type": m["type"],
                    "text": m["text"],
                    "mentions": [],
                },
            )
            if entity["type"] != m["type"]:
                raise NativeFormatError(
                    path,
                    doc["pmid"],
                    "type",
                    f"concept {cid} is typed both {entity['type']} and {m['type']}",
                )
            entity["mentions"].append([m["start"], m["end"]])
    relations = []
    for r in doc["relations"]:
        for arg in ("head", "tail"):
            if r[arg] not in concepts:
                raise NativeFormatError(
                    path,
                    r["line"],
                    arg,
                    f"relation argument {r[arg]!r} is not a concept mentioned in {doc['pmid']}",
                )
        relations.append({k: r[k] for k in ("head", "tail", "type", "novel")})
    entities = sorted(concepts.values(), key=lambda e: (e["start"], e["end"], e["id"]))
    return {"id": doc["pmid"], "text": doc["text"], "entities": entities, "relations": relations}


def _ner_records(doc: dict[str, Any]) -> Records:
    entities = [
        {k: m[k] for k in ("start", "end", "type", "text")}
        for m in sorted(doc["mentions"], key=lambda m: (m["start"], m["end"]))
    ]
    title_end = len(doc["title"])
    protected = [(e["start"], e["end"]) for e in entities]
    if any(s < title_end + 1 and e > title_end for s, e in protected):
        spans = sentence_spans(
            doc["text"], protected
        )  # a mention crosses title/abstract: no cut there
    else:
        offset = title_end + 1
        spans = sentence_spans(doc["title"], [(s, e) for s, e in protected if e <= title_end])
        spans += [
            (s + offset, e + offset)
            for s, e in sentence_spans(
                doc["abstract"], [(s - offset, e - offset) for s, e in protected if s >= offset]
            )
        ]
    whole = {"id": doc["pmid"], "text": doc["text"], "entities": entities}
    return cut_record(whole, spans)


def _load(data_root: Path, task: str) -> dict[str, Records]:
    folder = dataset_dir(data_root, "biored")
    out: dict[str, Records] = {}
    for split, name in FILES.items():
        path = folder / name
        docs = read_pubtator(path)
        if task == "re":
            out[split] = [_re_record(d, path) for d in docs]
        else:
            out[split] = [r for d in docs for r in _ner_records(d)]
    return out


def _load_ner(data_root: Path) -> dict[str, Records]:
    return _load(data_root, "ner")


def _load_re(data_root: Path) -> dict[str, Records]:
    return _load(data_root, "re")


register(
    DatasetSpec(
        name="biored_ner",
        task_type="ner",
        labels=ENTITY_TYPES,
        instruction="Extract every gene or gene product, chemical, disease or phenotype, sequence variant, organism and cell line mentioned in the sentence.",
        loader=_load_ner,
        subdir="biored",
        description="BioRED (PubTator) entity mentions, one record per sentence of the PubMed abstracts; licence not stated",
    )
)
register(
    DatasetSpec(
        name="biored_re",
        task_type="re",
        labels=RELATION_TYPES,
        instruction="The entities of the abstract are given (one per concept, at its first mention); list every relation between two of them (e.g. Association, Positive_Correlation, Bind).",
        loader=_load_re,
        subdir="biored",
        description="BioRED (PubTator) document-level relations between concepts; one record per abstract; licence not stated",
        extra={"entity_types": ENTITY_TYPES},
    )
)
