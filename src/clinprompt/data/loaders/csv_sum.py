"""Dialogue → note summarization from CSV (``mts_dialog``, ``aci_bench``).

* ``mts_dialog``: ``ID, section_header, section_text, dialogue``. source = dialogue, summary =
  section text, ``section_header`` kept (e.g. GENHX, FAM/SOCHX: the section the text belongs
  to). train = TrainingSet, dev = ValidationSet, test = TestSet-1 (MEDIQA-Chat 2023) + TestSet-2
  (MEDIQA-Sum 2023), 400 records. Ids ``<split>-<ID>`` (``test1-``/``test2-`` for the tests).
* ``aci_bench``: ``dataset, encounter_id, dialogue, note``. source = dialogue, summary = the
  full note; ``subset`` (aci / virtassist / virtscribe) kept. train = train.csv, dev =
  valid.csv, test = the three test files (taskB test1, taskC test2, CLEF taskC test3), 120
  encounters. Ids = encounter ids (D2N001...). Notes are long (often > 1,000 tokens).

Line ends inside cells are normalised to ``\\n``; cells are otherwise unchanged.
"""

from __future__ import annotations

from pathlib import Path

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_csv_rows
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records

MTS_FILES = {
    "train": ["MTS-Dialog-TrainingSet.csv"],
    "dev": ["MTS-Dialog-ValidationSet.csv"],
    "test": [
        "MTS-Dialog-TestSet-1-MEDIQA-Chat-2023.csv",
        "MTS-Dialog-TestSet-2-MEDIQA-Sum-2023.csv",
    ],
}
ACI_FILES = {
    "train": ["train.csv"],
    "dev": ["valid.csv"],
    "test": ["clinicalnlp_taskB_test1.csv", "clinicalnlp_taskC_test2.csv", "clef_taskC_test3.csv"],
}


def _need(path: Path, number: int, row: dict[str, str], *fields: str) -> None:
    for field in fields:
        if not row[field].strip():
            raise NativeFormatError(path, number, field, "expected a non-empty value")


def _load_mts(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "mts_dialog")
    out: dict[str, Records] = {}
    for split, names in MTS_FILES.items():
        records: Records = []
        for k, name in enumerate(names, start=1):
            path = folder / name
            prefix = split if len(names) == 1 else f"{split}{k}"
            for number, row in read_csv_rows(
                path, ("ID", "section_header", "section_text", "dialogue")
            ):
                _need(path, number, row, "ID", "section_header", "section_text", "dialogue")
                records.append(
                    {
                        "id": f"{prefix}-{row['ID'].strip()}",
                        "source": row["dialogue"].strip(),
                        "summary": row["section_text"].strip(),
                        "section_header": row["section_header"].strip(),
                    }
                )
        out[split] = records
    return out


def read_aci(path: Path, split_file: str) -> Records:
    """ACI-Bench records of one CSV file (``split_file``: the file's stem, kept as ``file``)."""
    records: Records = []
    for number, row in read_csv_rows(path, ("dataset", "encounter_id", "dialogue", "note")):
        _need(path, number, row, "dataset", "encounter_id", "dialogue", "note")
        records.append(
            {
                "id": row["encounter_id"].strip(),
                "source": row["dialogue"].strip(),
                "summary": row["note"].strip(),
                "subset": row["dataset"].strip(),
                "file": split_file,
            }
        )
    return records


def _load_aci(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "aci_bench")
    return {
        split: [r for name in names for r in read_aci(folder / name, Path(name).stem)]
        for split, names in ACI_FILES.items()
    }


register(
    DatasetSpec(
        name="mts_dialog",
        task_type="sum",
        instruction="Write the clinical note section (history, medications, assessment...) that documents this doctor-patient conversation.",
        loader=_load_mts,
        subdir="mts_dialog",
        description="MTS-Dialog: doctor-patient dialogue to clinical note section; test = both 2023 test sets; CC-BY-4.0",
    )
)
register(
    DatasetSpec(
        name="aci_bench",
        task_type="sum",
        instruction="Write the full clinical visit note (subjective, exam, results, assessment and plan) for this doctor-patient conversation.",
        loader=_load_aci,
        subdir="aci_bench",
        description="ACI-Bench: doctor-patient conversation to full visit note; test = the three test sets; CC-BY-4.0",
    )
)
