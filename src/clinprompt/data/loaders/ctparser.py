"""Clinical-Trial-Parser eligibility criteria NER (``ctparser_eligibility_ner``).

Native line: ``start:end:label,start:end:label,...<TAB>criterion text``. The offsets are 1-based
with an exclusive end (``1:20`` is ``text[0:19]``), so a span becomes ``start - 1, end - 1``.
Spans are checked to lie inside the text and on word boundaries.

The release has one file (the parser's test set): it is split from the seed into train/dev/test
80/10/10, grouping identical criterion texts so no text crosses splits. Record ids are
``L<line number>``.
"""

from __future__ import annotations

from pathlib import Path

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_text
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import seeded_split

LABELS = (
    "age",
    "allergy_name",
    "bmi",
    "cancer",
    "chronic_disease",
    "clinical_variable",
    "contraception_consent",
    "ethnicity",
    "gender",
    "language_fluency",
    "lower_bound",
    "pregnancy",
    "technology_access",
    "treatment",
    "upper_bound",
)
RATIOS = {"train": 0.8, "dev": 0.1, "test": 0.1}
FILE = "test_processed_medical_ner.tsv"


def read_ctparser(path: Path) -> Records:
    """Records from a ctparser NER TSV file (see the module docstring for the span convention)."""
    records: Records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise NativeFormatError(
                path, number, None, f"expected 'spans<TAB>text', got {len(fields)} fields"
            )
        spans, text = fields
        if not text.strip():
            raise NativeFormatError(
                path, number, "text", "expected a criterion text, got an empty string"
            )
        entities = []
        for item in filter(None, spans.split(",")):
            parts = item.split(":")
            if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
                raise NativeFormatError(
                    path, number, "spans", f"expected 'start:end:label', got {item!r}"
                )
            start, end, label = int(parts[0]) - 1, int(parts[1]) - 1, parts[2]
            if label not in LABELS:
                raise NativeFormatError(
                    path,
                    number,
                    "spans",
                    f"unknown label {label!r}; expected one of {list(LABELS)}",
                )
            if not (0 <= start < end <= len(text)):
                raise NativeFormatError(
                    path,
                    number,
                    "spans",
                    f"span {item!r} falls outside the text (length {len(text)})",
                )
            mention = text[start:end]
            cut_inside = (start > 0 and text[start - 1].isalnum() and mention[0].isalnum()) or (
                end < len(text) and text[end].isalnum() and mention[-1].isalnum()
            )
            if cut_inside or mention != mention.strip():
                raise NativeFormatError(
                    path,
                    number,
                    "spans",
                    f"span {item!r} = {mention!r} does not lie on word boundaries",
                )
            entities.append({"start": start, "end": end, "type": label, "text": mention})
        entities.sort(key=lambda e: (e["start"], e["end"]))
        records.append({"id": f"L{number}", "text": text, "entities": entities})
    return records


def _load(data_root: Path) -> dict[str, Records]:
    records = read_ctparser(dataset_dir(data_root, "ctparser_eligibility_ner") / FILE)
    return seeded_split(records, RATIOS, group=lambda r: r["text"])


register(
    DatasetSpec(
        name="ctparser_eligibility_ner",
        task_type="ner",
        labels=LABELS,
        instruction="Extract the eligibility-criterion entities (conditions, treatments, demographics, bounds and other variables) from the clinical trial criterion.",
        loader=_load,
        subdir="ctparser_eligibility_ner",
        description="Clinical-Trial-Parser (Facebook Research) eligibility criteria NER; single file split 80/10/10 from the seed; Apache-2.0",
    )
)
