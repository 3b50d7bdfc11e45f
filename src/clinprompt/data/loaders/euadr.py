"""EU-ADR gene–disease pairs, BioBERT preprocessing (``euadr``): masked pair classification.

Native: ``train.tsv`` (``sentence<TAB>label``, no header) and ``test.tsv`` (``index<TAB>sentence
<TAB>label`` with a header). Each sentence holds exactly one ``@GENE$`` and one ``@DISEASE$``
placeholder; they are the two entities (types Gene and Disease, the placeholder as mention).
Label 1 → one relation ``associated`` (Gene → Disease); label 0 → no relation.
Splits: test file; dev = seeded 10% of train. Ids ``train-<line>`` / ``test-<index>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_text
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import seeded_split

DEV_SHARE = 0.1
_MASKS = (("@GENE$", "Gene", "T1"), ("@DISEASE$", "Disease", "T2"))


def _record(rid: str, sentence: str, label: str, path: Path, line: int) -> dict[str, Any]:
    if label not in ("0", "1"):
        raise NativeFormatError(path, line, "label", f"expected 0 or 1, got {label!r}")
    entities = []
    for mask, etype, eid in _MASKS:
        if sentence.count(mask) != 1:
            raise NativeFormatError(
                path, line, "sentence", f"expected exactly one {mask}, found {sentence.count(mask)}"
            )
        start = sentence.index(mask)
        entities.append(
            {"id": eid, "start": start, "end": start + len(mask), "type": etype, "text": mask}
        )
    relations = [{"head": "T1", "tail": "T2", "type": "associated"}] if label == "1" else []
    return {"id": rid, "text": sentence, "entities": entities, "relations": relations}


def read_euadr(path: Path, with_index: bool) -> Records:
    """Records of one EU-ADR TSV file (``with_index``: the test layout with a header)."""
    records: Records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip() or (with_index and number == 1):
            continue
        fields = line.split("\t")
        if with_index:
            if len(fields) != 3:
                raise NativeFormatError(
                    path,
                    number,
                    None,
                    f"expected 'index<TAB>sentence<TAB>label', got {len(fields)} fields",
                )
            records.append(_record(f"test-{fields[0]}", fields[1], fields[2].strip(), path, number))
        else:
            if len(fields) != 2:
                raise NativeFormatError(
                    path, number, None, f"expected 'sentence<TAB>label', got {len(fields)} fields"
                )
            records.append(_record(f"train-{number}", fields[0], fields[1].strip(), path, number))
    if not records:
        raise NativeFormatError(path, None, None, "expected at least one sentence")
    return records


def _load(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "euadr")
    parts = seeded_split(
        read_euadr(folder / "train.tsv", False), {"train": 1 - DEV_SHARE, "dev": DEV_SHARE}
    )
    return {**parts, "test": read_euadr(folder / "test.tsv", True)}


register(
    DatasetSpec(
        name="euadr",
        task_type="re",
        labels=("associated",),
        instruction="A gene (@GENE$) and a disease (@DISEASE$) are masked in the sentence; say whether the sentence states that they are associated.",
        loader=_load,
        subdir="euadr",
        description="EU-ADR gene-disease associations (BioBERT masked-pair release, fold 1); dev = seeded 10% of train; MIT (repo)",
        extra={"entity_types": ("Gene", "Disease")},
    )
)
