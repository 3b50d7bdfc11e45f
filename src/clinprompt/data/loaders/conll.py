"""CoNLL-style IOB files (one ``token<sep>tag`` per line, blank line between sentences).

Datasets: ``bc5cdr_ner`` (Chemical, Disease), ``bc2gm_ner`` (Gene), ``e3c_en_clinical_ner``
(ClinicalEntity). A sentence's text is its tokens joined by single spaces; entity offsets index
that text. Records also keep ``tokens`` and ``tags`` (tags renamed to the registered entity types,
e.g. ``B-GENE`` → ``B-Gene``) so IOB-level scoring (seqeval) can cross-check span scoring.

Strict IOB2: an ``I-X`` tag must follow ``B-X`` or ``I-X``; anything else (and an unknown tag, a
line without exactly two fields, an empty file) raises :class:`NativeFormatError` with file:line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_text
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import split_by_blocks

__all__ = ["iob_to_entities", "read_iob"]


def iob_to_entities(
    tokens: list[str], tags: list[str], path: Path | str = "<iob>", lines: list[int] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Join ``tokens`` with single spaces and turn IOB2 ``tags`` into entity spans of that text."""
    lines = lines or list(range(1, len(tokens) + 1))
    entities: list[dict[str, Any]] = []
    offset = 0
    current: dict[str, Any] | None = None
    pieces: list[str] = []
    for token, tag, line in zip(tokens, tags, lines, strict=True):
        start, end = offset, offset + len(token)
        offset = end + 1
        pieces.append(token)
        if tag == "O":
            current = None
        elif tag.startswith("B-"):
            current = {"start": start, "end": end, "type": tag[2:]}
            entities.append(current)
        elif tag.startswith("I-"):
            if current is None or current["type"] != tag[2:]:
                before = "O" if current is None else f"a {current['type']} entity"
                raise NativeFormatError(
                    path,
                    line,
                    "tag",
                    f"{tag!r} continues an entity but follows {before} (expected B-{tag[2:]} first)",
                )
            current["end"] = end
        else:
            raise NativeFormatError(
                path, line, "tag", f"expected O, B-<type> or I-<type>, got {tag!r}"
            )
    text = " ".join(pieces)
    for entity in entities:
        entity["text"] = text[entity["start"] : entity["end"]]
    return text, entities


def read_iob(
    path: Path, label_map: dict[str, str], sep: str | None = "\t", id_prefix: str = ""
) -> Records:
    """Records from an IOB file; ``label_map`` maps native tag types to entity types.

    Args:
        path: the file.
        label_map: native type (``GENE``) → registered type (``Gene``); other types raise.
        sep: the token/tag separator (``"\\t"``), or None for any whitespace.
        id_prefix: prepended to the record ids (``{prefix}{sentence index}``).
    """
    records: Records = []
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def flush() -> None:
        if not tokens:
            return
        text, entities = iob_to_entities(tokens, tags, path, lines)
        records.append(
            {
                "id": f"{id_prefix}{len(records)}",
                "text": text,
                "entities": entities,
                "tokens": list(tokens),
                "tags": list(tags),
            }
        )
        tokens.clear()
        tags.clear()
        lines.clear()

    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            flush()
            continue
        fields = line.split(sep) if sep else line.split()
        if len(fields) != 2 or not fields[0] or not fields[1]:
            shown = "TAB" if sep == "\t" else "whitespace"
            raise NativeFormatError(
                path, number, None, f"expected 'token<{shown}>tag', got {line!r}"
            )
        token, tag = fields[0].strip(), fields[1].strip()
        if tag != "O":
            prefix, _, native = tag.partition("-")
            if prefix not in ("B", "I") or native not in label_map:
                raise NativeFormatError(
                    path,
                    number,
                    "tag",
                    f"expected O or B-/I- with a type in {sorted(label_map)}, got {tag!r}",
                )
            tag = f"{prefix}-{label_map[native]}"
        if not token or any(c.isspace() for c in token):
            raise NativeFormatError(
                path, number, "token", f"expected a token without spaces, got {token!r}"
            )
        tokens.append(token)
        tags.append(tag)
        lines.append(number)
    flush()
    if not records:
        raise NativeFormatError(path, None, None, "expected at least one sentence")
    return records


def _files(
    folder: Path, names: dict[str, str], label_map: dict[str, str], sep: str | None
) -> dict[str, Records]:
    return {
        split: read_iob(folder / name, label_map, sep, id_prefix=f"{split}-")
        for split, name in names.items()
    }


def _bc5cdr(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "bc5cdr_ner")
    names = {"train": "train.tsv", "dev": "devel.tsv", "test": "test.tsv"}
    return _files(folder, names, {"Chemical": "Chemical", "Disease": "Disease"}, "\t")


def _bc2gm(data_root: Path) -> dict[str, Records]:
    return _files(
        dataset_dir(data_root, "bc2gm_ner"),
        {"train": "train.tsv", "dev": "devel.tsv", "test": "test.tsv"},
        {"GENE": "Gene"},
        "\t",
    )


# E3C has no dev file: dev = 10% of the training sentences, in seeded blocks of 25 consecutive
# sentences (documents are not marked in the file; blocks keep most of a case report together).
E3C_DEV_SHARE = 0.1
E3C_BLOCK = 25


def _e3c(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "e3c_en_clinical_ner")
    label_map = {"ety": "ClinicalEntity"}
    pool = read_iob(folder / "train.txt", label_map, None, id_prefix="train-")
    parts = split_by_blocks(pool, {"train": 1 - E3C_DEV_SHARE, "dev": E3C_DEV_SHARE}, E3C_BLOCK)
    return {**parts, "test": read_iob(folder / "test.txt", label_map, None, id_prefix="test-")}


register(
    DatasetSpec(
        name="bc5cdr_ner",
        task_type="ner",
        labels=("Chemical", "Disease"),
        instruction="Extract every chemical (drug) and disease mention from the sentence.",
        loader=_bc5cdr,
        subdir="bc5cdr_ner",
        description="BC5CDR chemicals and diseases in PubMed sentences (IOB, MTL-Bioinformatics-2016); CC-BY-4.0",
    )
)
register(
    DatasetSpec(
        name="bc2gm_ner",
        task_type="ner",
        labels=("Gene",),
        instruction="Extract every gene or gene product mention from the sentence.",
        loader=_bc2gm,
        subdir="bc2gm_ner",
        description="BioCreative II gene mentions in PubMed sentences (IOB, MTL-Bioinformatics-2016); CC-BY-4.0",
    )
)
register(
    DatasetSpec(
        name="e3c_en_clinical_ner",
        task_type="ner",
        labels=("ClinicalEntity",),
        instruction="Extract every clinical entity (disorders, signs and symptoms, findings) from the sentence of a clinical case.",
        loader=_e3c,
        subdir="e3c_en_clinical_ner",
        description="E3C English clinical cases, clinical entities (layer 1; native tag 'ety'); dev = seeded 10% of train in 25-sentence blocks; CC-BY-NC",
    )
)
