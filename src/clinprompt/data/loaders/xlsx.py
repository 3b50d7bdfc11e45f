"""Spreadsheet datasets (``medicationqa``, ``meqsum``, ``mediqa2021_qs``), first sheet, header row.

* ``medicationqa`` (qa, long free-text answers): columns Question, Focus (Drug), Question Type,
  Answer, Section Title, URL. ``answer`` = the Answer text; focus, question type, section and URL
  kept. One sheet → seeded 80/10/10, grouping identical questions (39 questions repeat with a
  different answer) so none crosses splits. Ids ``row<n>`` (spreadsheet row).
* ``meqsum`` (sum): columns File, CHQ, Summary. source = consumer health question, summary = its
  one-question summary. One sheet → seeded 80/10/10. Ids = File.
* ``mediqa2021_qs`` (sum): q_id, NLM Question, Summary (+ Question Focus/Type in validation).
  The validation set (50) → train/dev 80/20 from the seed; test = the reference test set (100).
  Ids ``val-<q_id>`` / ``test-<q_id>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_xlsx_rows
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import seeded_split

RATIOS = {"train": 0.8, "dev": 0.1, "test": 0.1}
QS_DEV_SHARE = 0.2


def _text(path: Path, number: int, row: dict[str, str], field: str) -> str:
    value = row.get(field, "").strip()
    if not value:
        raise NativeFormatError(path, f"row {number}", field, "expected a non-empty cell")
    return value


def _unique(path: Path, records: Records) -> Records:
    seen: set[str] = set()
    for r in records:
        if r["id"] in seen:
            raise NativeFormatError(path, None, "id", f"id {r['id']!r} repeats")
        seen.add(r["id"])
    return records


def _load_medicationqa(data_root: Path) -> dict[str, Records]:
    path = dataset_dir(data_root, "medicationqa") / "MedInfo2019-QA-Medications.xlsx"
    columns = ("Question", "Focus (Drug)", "Question Type", "Answer", "Section Title", "URL")
    records: Records = []
    for number, row in read_xlsx_rows(path, columns):
        record: dict[str, Any] = {
            "id": f"row{number}",
            "question": _text(path, number, row, "Question"),
            "answer": _text(path, number, row, "Answer"),
        }
        for field, key in (
            ("Focus (Drug)", "focus"),
            ("Question Type", "question_type"),
            ("Section Title", "section_title"),
            ("URL", "url"),
        ):
            record[key] = row[field].strip()
        records.append(record)
    return seeded_split(records, RATIOS, group=lambda r: " ".join(r["question"].lower().split()))


def _load_meqsum(data_root: Path) -> dict[str, Records]:
    path = dataset_dir(data_root, "meqsum") / "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"
    records = [
        {
            "id": _text(path, n, row, "File"),
            "source": _text(path, n, row, "CHQ"),
            "summary": _text(path, n, row, "Summary"),
        }
        for n, row in read_xlsx_rows(path, ("File", "CHQ", "Summary"))
    ]
    return seeded_split(_unique(path, records), RATIOS)


def _qs_records(path: Path, prefix: str) -> Records:
    records: Records = []
    for n, row in read_xlsx_rows(path, ("q_id", "NLM Question", "Summary")):
        record: dict[str, Any] = {
            "id": f"{prefix}-{_text(path, n, row, 'q_id')}",
            "source": _text(path, n, row, "NLM Question"),
            "summary": _text(path, n, row, "Summary"),
        }
        for field, key in (
            ("Question Focus", "question_focus"),
            ("Question Type", "question_type"),
        ):
            if field in row:
                record[key] = row[field].strip()
        records.append(record)
    return _unique(path, records)


def _load_qs(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "mediqa2021_qs")
    validation = _qs_records(
        folder / "MEDIQA2021-Task1-QuestionSummarization-ValidationSet.xlsx", "val"
    )
    parts = seeded_split(validation, {"train": 1 - QS_DEV_SHARE, "dev": QS_DEV_SHARE})
    return {
        **parts,
        "test": _qs_records(folder / "MEDIQA2021-Task1-TestSet-ReferenceSummaries.xlsx", "test"),
    }


register(
    DatasetSpec(
        name="medicationqa",
        task_type="qa",
        answer_style="long",
        instruction="Answer the consumer's question about a medication in a few sentences.",
        loader=_load_medicationqa,
        subdir="medicationqa",
        description="MedicationQA (MedInfo 2019): consumer medication questions with expert answers; one sheet split 80/10/10 from the seed; licence not stated",
    )
)
register(
    DatasetSpec(
        name="meqsum",
        task_type="sum",
        instruction="Summarize the consumer health question as one short, precise question.",
        loader=_load_meqsum,
        subdir="meqsum",
        description="MeQSum (ACL 2019): consumer health question summarization; one sheet split 80/10/10 from the seed; CC-BY-4.0",
    )
)
register(
    DatasetSpec(
        name="mediqa2021_qs",
        task_type="sum",
        instruction="Summarize the consumer health question as one short, precise question.",
        loader=_load_qs,
        subdir="mediqa2021_qs",
        description="MEDIQA 2021 task 1 question summarization; validation set split 80/20 into train/dev, official test; licence not stated",
    )
)
