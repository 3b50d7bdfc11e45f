"""DDI corpus 2013 (``ddi2013_ner``, ``ddi2013_re``), read straight from ``DDICorpus-2013.zip``.

Each ``<sentence text=...>`` holds ``<entity charOffset="s-e" type=...>`` (inclusive end; a
discontinuous mention has several ``s-e`` parts joined by ``;``) and ``<pair e1 e2 ddi type>``.

* ``ddi2013_ner`` (DrugNER): one record per non-empty sentence; types drug, brand, group,
  drug_n. Train = ``Train/``, test = ``Test/Test for DrugNER task/``.
* ``ddi2013_re``: one record per sentence with at least one candidate pair (two or more drug
  mentions); all its entities are given; relations are the pairs with ``ddi="true"``, typed
  mechanism / effect / advise / int (head = e1, tail = e2). Train = ``Train/``, test =
  ``Test/Test for DDI Extraction task/``.
* dev (both): a seeded 10% of the training *documents*.

Discontinuous mentions (49 in the corpus) become their covering span (first start to last end;
``text`` is the covered text, e.g. "nonheme and heme iron"), with the parts kept in
``fragments`` and the annotated string in ``mention``. Entity ids are the native suffixes (e0...).
Known errata in the release (applied, listed in :data:`ERRATA`): one fragment offset off by one,
and one ``ddi="true"`` pair without a type (that sentence is left out of ddi2013_re).
Any other mismatch between offsets and mention text raises with file and entity id.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, require_file
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import seeded_split

ZIP = "DDICorpus-2013.zip"
ENTITY_TYPES = ("drug", "brand", "group", "drug_n")
DDI_TYPES = ("mechanism", "effect", "advise", "int")
DEV_SHARE = 0.1
# element id → corrected charOffset, or None: drop that sentence from ddi2013_re (untyped DDI).
ERRATA: dict[str, str | None] = {
    "DDI-DrugBank.d216.s16.e2": "96-99;108-115",  # "(R)-warfarin": native 95-98;107-114 is shifted by one
    "DDI-DrugBank.d236.s29.p0": None,  # ddi="true" without a type
}
_TRAIN = "DDICorpus/Train/"
_TEST = {
    "ner": "DDICorpus/Test/Test for DrugNER task/",
    "re": "DDICorpus/Test/Test for DDI Extraction task/",
}


def _fragments(offset: str, where: str, archive: Path, eid: str) -> list[tuple[int, int]]:
    parts = []
    for piece in offset.split(";"):
        s, sep, e = piece.partition("-")
        if not sep or not s.isdigit() or not e.isdigit() or int(e) < int(s):
            raise NativeFormatError(
                archive,
                where,
                f"{eid}.charOffset",
                f"expected 'start-end[;start-end]', got {offset!r}",
            )
        parts.append((int(s), int(e) + 1))
    return parts


def _entity(node: ET.Element, text: str, archive: Path, where: str) -> dict[str, Any]:
    eid, etype, mention = node.get("id", ""), node.get("type", ""), node.get("text", "")
    if etype not in ENTITY_TYPES:
        raise NativeFormatError(
            archive,
            where,
            f"{eid}.type",
            f"unknown entity type {etype!r}; expected one of {list(ENTITY_TYPES)}",
        )
    frags = _fragments(ERRATA.get(eid) or node.get("charOffset", ""), where, archive, eid)
    if any(e > len(text) for _, e in frags):
        raise NativeFormatError(
            archive,
            where,
            f"{eid}.charOffset",
            f"{frags} falls outside the sentence (length {len(text)})",
        )
    joined = "".join(text[s:e] for s, e in frags)
    if joined.replace(" ", "") != mention.replace(" ", ""):
        raise NativeFormatError(
            archive,
            where,
            f"{eid}.charOffset",
            f"offsets give {joined!r}, expected the mention {mention!r}",
        )
    start, end = frags[0][0], frags[-1][1]
    entity = {
        "id": eid.rsplit(".", 1)[-1],
        "start": start,
        "end": end,
        "type": etype,
        "text": text[start:end],
    }
    if len(frags) > 1:
        entity["fragments"] = [list(f) for f in frags]
        entity["mention"] = mention
    return entity


def _read_zip(data_root: Path) -> tuple[Path, dict[str, list[tuple[str, ET.Element]]]]:
    """{folder prefix: [(member name, parsed document root)]} for the three folders used."""
    archive = require_file(dataset_dir(data_root, "ddi2013") / ZIP)
    out: dict[str, list[tuple[str, ET.Element]]] = {p: [] for p in (_TRAIN, *_TEST.values())}
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise NativeFormatError(archive, None, None, f"expected a zip archive: {e}") from None
    with zf:
        for name in sorted(zf.namelist()):
            prefix = next((p for p in out if name.startswith(p)), None)
            if prefix is None or not name.endswith(".xml") or "/._" in name:
                continue
            try:
                root = ET.fromstring(zf.read(name))
            except ET.ParseError as e:
                raise NativeFormatError(
                    f"{archive}!{name}", e.position[0], None, f"invalid XML: {e}"
                ) from None
            out[prefix].append((name, root))
    for prefix, docs in out.items():
        if not docs:
            raise NativeFormatError(
                archive, None, None, f"expected DDI XML documents under {prefix!r}"
            )
    return archive, out


def _sentences(archive: Path, docs: list[tuple[str, ET.Element]], with_pairs: bool) -> Records:
    records: Records = []
    for name, root in docs:
        doc_id = root.get("id", name)
        for sent in root.iter("sentence"):
            sid, text = sent.get("id", ""), sent.get("text", "")
            where = f"{name}:{sid}"
            if not text.strip():
                continue  # the release has empty <sentence text=""/> elements; nothing to annotate
            entities = [_entity(e, text, archive, where) for e in sent.findall("entity")]
            record: dict[str, Any] = {
                "id": sid,
                "document": doc_id,
                "text": text,
                "entities": entities,
            }
            if with_pairs:
                pairs = sent.findall("pair")
                if not pairs or any(ERRATA.get(p.get("id", ""), "") is None for p in pairs):
                    continue
                known = {e["id"] for e in entities}
                relations = []
                for p in pairs:
                    pid, head, tail = (
                        p.get("id", ""),
                        p.get("e1", "").rsplit(".", 1)[-1],
                        p.get("e2", "").rsplit(".", 1)[-1],
                    )
                    if head not in known or tail not in known:
                        raise NativeFormatError(
                            archive,
                            where,
                            f"{pid}.e1/e2",
                            f"pair refers to an entity not in the sentence ({head}, {tail})",
                        )
                    if p.get("ddi") not in ("true", "false"):
                        raise NativeFormatError(
                            archive,
                            where,
                            f"{pid}.ddi",
                            f"expected 'true' or 'false', got {p.get('ddi')!r}",
                        )
                    if p.get("ddi") == "true":
                        if p.get("type") not in DDI_TYPES:
                            raise NativeFormatError(
                                archive,
                                where,
                                f"{pid}.type",
                                f"expected one of {list(DDI_TYPES)}, got {p.get('type')!r}",
                            )
                        relations.append({"head": head, "tail": tail, "type": p.get("type")})
                record["relations"] = relations
            records.append(record)
    return records


def _load(data_root: Path, task: str) -> dict[str, Records]:
    archive, docs = _read_zip(data_root)
    with_pairs = task == "re"
    train = _sentences(archive, docs[_TRAIN], with_pairs)
    parts = seeded_split(
        train, {"train": 1 - DEV_SHARE, "dev": DEV_SHARE}, group=lambda r: r["document"]
    )
    return {**parts, "test": _sentences(archive, docs[_TEST[task]], with_pairs)}


def _load_ner(data_root: Path) -> dict[str, Records]:
    out = _load(data_root, "ner")
    for records in out.values():
        for r in records:
            for e in r["entities"]:
                del e["id"]
    return out


def _load_re(data_root: Path) -> dict[str, Records]:
    return _load(data_root, "re")


register(
    DatasetSpec(
        name="ddi2013_ner",
        task_type="ner",
        labels=ENTITY_TYPES,
        instruction="Extract every pharmacological substance mention: drug (generic name), brand (brand name), group (drug class) or drug_n (substance not approved for human use).",
        loader=_load_ner,
        subdir="ddi2013",
        description="DDI corpus 2013 DrugNER (DrugBank + MedLine sentences); dev = seeded 10% of train documents; CC-BY-NC-4.0",
    )
)
register(
    DatasetSpec(
        name="ddi2013_re",
        task_type="re",
        labels=DDI_TYPES,
        instruction="Given the drug mentions in the sentence, list every pair that interacts, typed as mechanism (pharmacokinetic), effect, advise (a recommendation) or int (interaction stated without detail).",
        loader=_load_re,
        subdir="ddi2013",
        description="DDI corpus 2013 drug-drug interactions (sentences with candidate pairs); dev = seeded 10% of train documents; CC-BY-NC-4.0",
        extra={"entity_types": ENTITY_TYPES},
    )
)
