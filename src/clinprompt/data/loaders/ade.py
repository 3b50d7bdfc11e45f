"""ADE corpus v2 (``ade_corpus_v2``): drug → adverse effect and drug → dose in PubMed sentences.

Native files: ``DRUG-AE.rel`` and ``DRUG-DOSE.rel`` (``PMID|sentence|effect-or-dose|start|end|
drug|start|end``, one relation per line, offsets into the *abstract*) and ``ADE-NEG.txt``
(``PMID NEG sentence``: sentences with no adverse effect).

One record per (PMID, sentence). The .rel offsets are document offsets, so the sentence's offset
in its abstract is recovered as the one shift that maps *every* mention of the sentence onto its
text (``sentence[doc_start - shift : doc_end - shift] == mention``); a sentence with no such
shift raises. Entities (Drug, AdverseEffect, Dose) are deduplicated by span and type;
relations: ``causes`` (Drug → AdverseEffect) and ``has_dose`` (Drug → Dose); every ordered pair
is asked (why not ``pair_types``: the registration below). ADE-NEG sentences
become records with no entities and no relations (repeated identical NEG lines — 7 in the
release — are kept once). Ids: ``<PMID>-<n>`` (relation sentences) and ``<PMID>-neg<n>``.

No official split: seeded 70/10/20 train/dev/test by PMID (no abstract crosses splits).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_text
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import seeded_split

RATIOS = {"train": 0.7, "dev": 0.1, "test": 0.2}
_FIELDS = ("pmid", "sentence", "mention", "start", "end", "drug", "drug_start", "drug_end")


def _read_rel(path: Path, kind: str) -> list[tuple[str, str, dict[str, Any], int]]:
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != len(_FIELDS):
            raise NativeFormatError(
                path,
                number,
                None,
                f"expected {len(_FIELDS)} '|'-separated fields ({'|'.join(_FIELDS)}), got {len(parts)}",
            )
        row = dict(zip(_FIELDS, parts, strict=True))
        for field in ("start", "end", "drug_start", "drug_end"):
            if not row[field].isdigit():
                raise NativeFormatError(
                    path, number, field, f"expected a character offset, got {row[field]!r}"
                )
            row[field] = int(row[field])
        for mention, s, e in (("mention", "start", "end"), ("drug", "drug_start", "drug_end")):
            if row[e] - row[s] != len(row[mention]) or not row[mention]:
                raise NativeFormatError(
                    path,
                    number,
                    mention,
                    f"offsets {row[s]}-{row[e]} do not fit the mention {row[mention]!r}",
                )
        row["kind"], row["source"] = kind, f"{path}:{number}"
        rows.append((row["pmid"], row["sentence"], row, number))
    return rows


def _sentence_shift(sentence: str, rows: list[dict[str, Any]]) -> int:
    mentions = [(r["mention"], r["start"]) for r in rows] + [
        (r["drug"], r["drug_start"]) for r in rows
    ]
    candidates: Counter[int] = Counter()
    for text, doc_start in mentions:
        index = sentence.find(text)
        while index >= 0:
            candidates[doc_start - index] += 1
            index = sentence.find(text, index + 1)
    for shift, _ in candidates.most_common():
        if all(sentence[s - shift : s - shift + len(t)] == t for t, s in mentions):
            return shift
    raise NativeFormatError(
        rows[0]["source"],
        "",
        "offsets",
        f"no single sentence offset maps every mention of this sentence onto its text: {sentence[:80]!r}",
    )


def _trim(sentence: str, start: int, end: int, etype: str) -> tuple[int, int, str]:
    """Drop whitespace the native offsets include at either end of a mention (2 records)."""
    while start < end and sentence[start].isspace():
        start += 1
    while end > start and sentence[end - 1].isspace():
        end -= 1
    return start, end, etype


def _record(rid: str, pmid: str, sentence: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    shift = _sentence_shift(sentence, rows)
    spans: dict[tuple[int, int, str], None] = {}
    pairs = []
    for r in rows:
        tail_type = "AdverseEffect" if r["kind"] == "ae" else "Dose"
        drug = _trim(sentence, r["drug_start"] - shift, r["drug_end"] - shift, "Drug")
        other = _trim(sentence, r["start"] - shift, r["end"] - shift, tail_type)
        spans.setdefault(drug)
        spans.setdefault(other)
        pairs.append((drug, other, "causes" if r["kind"] == "ae" else "has_dose"))
    ordered = sorted(spans, key=lambda s: (s[0], s[1], s[2]))
    ids = {span: f"T{i + 1}" for i, span in enumerate(ordered)}
    entities = [
        {"id": ids[s], "start": s[0], "end": s[1], "type": s[2], "text": sentence[s[0] : s[1]]}
        for s in ordered
    ]
    relations = []
    for head, tail, rtype in pairs:
        rel = {"head": ids[head], "tail": ids[tail], "type": rtype}
        if rel not in relations:
            relations.append(rel)
    return {"id": rid, "pmid": pmid, "text": sentence, "entities": entities, "relations": relations}


def read_ade(folder: Path) -> Records:
    """All ADE records (relation sentences first, then negative sentences), unsplit."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, kind in (("DRUG-AE.rel", "ae"), ("DRUG-DOSE.rel", "dose")):
        for pmid, sentence, row, _ in _read_rel(folder / name, kind):
            groups.setdefault((pmid, sentence), []).append(row)
    records: Records = []
    per_pmid: Counter[str] = Counter()
    for (pmid, sentence), rows in groups.items():
        records.append(_record(f"{pmid}-{per_pmid[pmid]}", pmid, sentence, rows))
        per_pmid[pmid] += 1
    path = folder / "ADE-NEG.txt"
    seen: set[tuple[str, str]] = set()
    negatives: Counter[str] = Counter()
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(" ", 2)
        if len(parts) != 3 or parts[1] != "NEG" or not parts[0].isdigit() or not parts[2].strip():
            raise NativeFormatError(
                path, number, None, f"expected 'PMID NEG sentence', got {line[:60]!r}"
            )
        pmid, sentence = parts[0], parts[2]
        if (pmid, sentence) in groups:
            raise NativeFormatError(
                path, number, "sentence", "this sentence also has relations in the .rel files"
            )
        if (pmid, sentence) in seen:
            continue  # an exact repeat of an earlier NEG line (documented above)
        seen.add((pmid, sentence))
        records.append(
            {
                "id": f"{pmid}-neg{negatives[pmid]}",
                "pmid": pmid,
                "text": sentence,
                "entities": [],
                "relations": [],
            }
        )
        negatives[pmid] += 1
    return records


def _load(data_root: Path) -> dict[str, Records]:
    return seeded_split(
        read_ade(dataset_dir(data_root, "ade_corpus_v2")), RATIOS, group=lambda r: r["pmid"]
    )


register(
    DatasetSpec(
        name="ade_corpus_v2",
        task_type="re",
        labels=("causes", "has_dose"),
        instruction="Given the drugs, adverse effects and doses marked in the sentence, list every relation: a drug causes an adverse effect, or a drug has a dose.",
        loader=_load,
        subdir="ade_corpus_v2",
        description="ADE corpus v2 (Gurulingappa et al. 2012): drug-AE and drug-dose relations plus negative sentences; seeded 70/10/20 by PMID; licence not stated",
        extra={"entity_types": ("Drug", "AdverseEffect", "Dose")},
        # No pair_types: every ordered pair is asked, though only Drug -> AdverseEffect and
        # Drug -> Dose are ever related. Typed (pair_types=((Drug, AdverseEffect), (Drug,
        # Dose))), 97% of the asked pairs are related (94% `causes`) and every method answers
        # `causes` to all of them (dev; docs/benchmarks.md, "Typed candidate pairs"): the
        # target would no longer separate methods. Asking every pair keeps the one thing it
        # measures: whether a prompt reads the pair's type words.
    )
)
