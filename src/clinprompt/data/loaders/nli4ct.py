"""NLI4CT (SemEval-2023 task 7) (``nli4ct``), read from ``Complete_dataset.zip``.

Statements: ``{uuid: {Type: Single|Comparison, Section_id, Primary_id, Secondary_id?, Statement,
Label, Primary_evidence_index, Secondary_evidence_index?}}``; trials: ``CT json/<NCT id>.json``
with the sections Intervention, Eligibility, Results, Adverse Events (lists of lines).

Record: ``premise`` = the statement's section of the primary trial — for Comparison statements
followed by the same section of the secondary trial — as ``Primary trial:`` / ``Secondary
trial:`` blocks, one stripped line per native line (so the evidence indices keep pointing at
lines); ``hypothesis`` = the statement; ``label`` = Entailment / Contradiction. Type, section,
trial ids and evidence indices are kept. Splits: train.json, dev.json and Gold_test.json (the
labelled test; the unlabelled test.json is not used). Ids = statement uuids.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, require_file, zip_member
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records

ZIP = "Complete_dataset.zip"
LABELS = ("Entailment", "Contradiction")
SECTIONS = ("Intervention", "Eligibility", "Results", "Adverse Events")
FILES = {
    "train": "Complete_dataset/train.json",
    "dev": "Complete_dataset/dev.json",
    "test": "Complete_dataset/Gold_test.json",
}
TRIALS = "Complete_dataset/CT json/"


def _json(zf: zipfile.ZipFile, archive: Path, name: str) -> Any:
    try:
        return json.loads(zip_member(zf, archive, name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NativeFormatError(
            f"{archive}!{name}", getattr(e, "lineno", None), None, f"expected UTF-8 JSON: {e}"
        ) from None


class _Trials:
    def __init__(self, zf: zipfile.ZipFile, archive: Path):
        self.zf, self.archive, self.cache = zf, archive, {}
        self.names = set(zf.namelist())

    def section(self, nct: str, section: str, where: str, field: str) -> str:
        if nct not in self.cache:
            name = f"{TRIALS}{nct}.json"
            if name not in self.names:
                raise NativeFormatError(
                    self.archive, where, field, f"trial {nct!r} has no file {name!r} in the zip"
                )
            self.cache[nct] = _json(self.zf, self.archive, name)
        lines = self.cache[nct].get(section)
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            raise NativeFormatError(
                f"{self.archive}!{TRIALS}{nct}.json", None, section, "expected a list of lines"
            )
        return "\n".join(line.strip() for line in lines)


def _record(uuid: str, item: Any, trials: _Trials, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise NativeFormatError(trials.archive, where, None, "expected a statement object")
    kind, section, label, statement = (
        item.get("Type"),
        item.get("Section_id"),
        item.get("Label"),
        item.get("Statement"),
    )
    if kind not in ("Single", "Comparison"):
        raise NativeFormatError(
            trials.archive, where, "Type", f"expected Single or Comparison, got {kind!r}"
        )
    if section not in SECTIONS:
        raise NativeFormatError(
            trials.archive,
            where,
            "Section_id",
            f"expected one of {list(SECTIONS)}, got {section!r}",
        )
    if label not in LABELS:
        raise NativeFormatError(
            trials.archive, where, "Label", f"expected one of {list(LABELS)}, got {label!r}"
        )
    if not isinstance(statement, str) or not statement.strip():
        raise NativeFormatError(trials.archive, where, "Statement", "expected a non-empty string")
    premise = "Primary trial:\n" + trials.section(
        str(item.get("Primary_id")), section, where, "Primary_id"
    )
    record: dict[str, Any] = {
        "id": uuid,
        "premise": premise,
        "hypothesis": statement.strip(),
        "label": label,
        "type": kind,
        "section": section,
        "primary_id": item.get("Primary_id"),
        "primary_evidence_index": item.get("Primary_evidence_index", []),
    }
    if kind == "Comparison":
        if not item.get("Secondary_id"):
            raise NativeFormatError(
                trials.archive,
                where,
                "Secondary_id",
                "expected the secondary trial of a Comparison statement",
            )
        record["premise"] += "\n\nSecondary trial:\n" + trials.section(
            str(item["Secondary_id"]), section, where, "Secondary_id"
        )
        record["secondary_id"] = item["Secondary_id"]
        record["secondary_evidence_index"] = item.get("Secondary_evidence_index", [])
    return record


def _load(data_root: Path) -> dict[str, Records]:
    archive = require_file(dataset_dir(data_root, "nli4ct") / ZIP)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise NativeFormatError(archive, None, None, f"expected a zip archive: {e}") from None
    out: dict[str, Records] = {}
    with zf:
        trials = _Trials(zf, archive)
        for split, name in FILES.items():
            statements = _json(zf, archive, name)
            if not isinstance(statements, dict) or not statements:
                raise NativeFormatError(
                    f"{archive}!{name}", None, None, "expected an object {uuid: statement}"
                )
            out[split] = [
                _record(uuid, item, trials, f"{name}:{uuid}") for uuid, item in statements.items()
            ]
    return out


register(
    DatasetSpec(
        name="nli4ct",
        task_type="nli",
        labels=LABELS,
        instruction="Given the section of the clinical trial report(s), is the statement entailed (Entailment) or contradicted (Contradiction)?",
        loader=_load,
        subdir="nli4ct",
        description="NLI4CT (SemEval-2023 task 7): statements about breast-cancer trial reports; premise = the named section; licence not stated",
    )
)
