"""ChemProt as released with SciBERT (``chemprot``): one marked chemical–protein pair per line.

Native line: ``{"text": "... << X >> ... [[ Y ]] ...", "label": "INHIBITOR", "metadata": []}``.
The markers ``<< `` / `` >>`` and ``[[ `` / `` ]]`` are removed (the first `` >>`` / `` ]]`` after
each opener closes it; the text itself may contain ``>>`` or ``[[``) and the two mentions get
offsets into the clean text. This release marks the pair by position, not by type: in every line
``<<`` marks the earlier mention. Entity types are therefore not known and both are typed
``Entity``; the relation goes from the ``<<`` mention (T1, head) to the ``[[`` mention (T2, tail).
A label ``false`` (absent from this release) gives a record with no relation.
Splits: train/dev/test files. Ids: ``<split>-<line>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_jsonl_lines
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records

LABELS = (
    "ACTIVATOR",
    "AGONIST",
    "AGONIST-ACTIVATOR",
    "AGONIST-INHIBITOR",
    "ANTAGONIST",
    "DOWNREGULATOR",
    "INDIRECT-DOWNREGULATOR",
    "INDIRECT-UPREGULATOR",
    "INHIBITOR",
    "PRODUCT-OF",
    "SUBSTRATE",
    "SUBSTRATE_PRODUCT-OF",
    "UPREGULATOR",
)
_MARKERS = (("<< ", " >>", "T1"), ("[[ ", " ]]", "T2"))


def strip_markers(marked: str) -> tuple[str, list[dict[str, Any]]]:
    """Remove the two marker pairs; return the clean text and the two entities (T1, T2).

    Raises:
        ValueError: a marker pair is missing, repeated, or the pairs overlap.
    """
    found = []
    for opener, closer, eid in _MARKERS:
        if marked.count(opener) != 1:
            raise ValueError(
                f"expected exactly one {opener.strip()!r} marker, found {marked.count(opener)}"
            )
        start = marked.index(opener)
        end = marked.find(closer, start + len(opener))
        if end < 0:
            raise ValueError(f"marker {opener.strip()!r} is never closed by {closer.strip()!r}")
        found.append((start, end, opener, closer, eid))
    found.sort()
    (s1, e1, o1, c1, _), (s2, _, _, _, _) = found
    if s2 < e1 + len(c1):
        raise ValueError("the two marked mentions overlap")
    text_parts, entities, cursor, removed = [], [], 0, 0
    for start, end, opener, closer, eid in found:
        text_parts.append(marked[cursor:start])
        removed += len(opener)
        mention = marked[start + len(opener) : end]
        if not mention.strip():
            raise ValueError(f"the mention marked by {opener.strip()!r} is empty")
        clean_start = start + len(opener) - removed
        entities.append(
            {
                "id": eid,
                "start": clean_start,
                "end": clean_start + len(mention),
                "type": "Entity",
                "text": mention,
            }
        )
        text_parts.append(mention)
        removed += len(closer)
        cursor = end + len(closer)
    text_parts.append(marked[cursor:])
    text = "".join(text_parts)
    entities.sort(key=lambda e: e["id"])
    return text, entities


def read_chemprot(path: Path, split: str) -> Records:
    """Records of one SciBERT ChemProt file."""
    records: Records = []
    for number, row in read_jsonl_lines(path):
        marked, label = row.get("text"), row.get("label")
        if not isinstance(marked, str) or not marked.strip():
            raise NativeFormatError(path, number, "text", "expected a marked sentence")
        if label != "false" and label not in LABELS:
            raise NativeFormatError(
                path,
                number,
                "label",
                f"unknown label {label!r}; expected 'false' or one of {list(LABELS)}",
            )
        try:
            text, entities = strip_markers(marked)
        except ValueError as e:
            raise NativeFormatError(path, number, "text", str(e)) from None
        for e in entities:
            if text[e["start"] : e["end"]] != e["text"]:  # guard the offset arithmetic
                raise NativeFormatError(
                    path, number, "text", f"offsets of {e['id']} do not match its mention"
                )
        relations = [] if label == "false" else [{"head": "T1", "tail": "T2", "type": label}]
        records.append(
            {"id": f"{split}-{number}", "text": text, "entities": entities, "relations": relations}
        )
    return records


def _load(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "chemprot")
    return {
        split: read_chemprot(folder / f"{split}.txt", split) for split in ("train", "dev", "test")
    }


register(
    DatasetSpec(
        name="chemprot",
        task_type="re",
        labels=LABELS,
        instruction="Two mentions (a chemical and a gene/protein) are marked in the sentence; give the chemical-protein relation between them (e.g. INHIBITOR, AGONIST, SUBSTRATE).",
        loader=_load,
        subdir="chemprot",
        description="ChemProt (BioCreative VI) pairs as released with SciBERT; positional entity markers, types unknown; Apache-2.0 (repo)",
        extra={"entity_types": ("Entity",)},
    )
)
