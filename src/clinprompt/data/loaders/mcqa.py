"""Four-option medical multiple choice (``medqa_usmle``, ``medmcqa``), MedAgents-benchmark JSONL.

Native line: ``{"realidx", "question", "options": {"A".."D"}, "answer_idx", "answer", ...}``;
``options[answer_idx]`` must equal ``answer``. Record: ``question``, ``options``, ``answer`` =
the key; ``meta_info`` (USMLE step) kept when present. Ids = ``realidx``.

Both releases are one file (the benchmark's test questions), split from the seed:
* ``medqa_usmle`` (a target): 60/10/30 train pool / dev / test (≈ 764 / 127 / 382).
* ``medmcqa``: 80/10/10.
"""

from __future__ import annotations

from pathlib import Path

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_jsonl_lines
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import seeded_split

KEYS = ("A", "B", "C", "D")
RATIOS = {
    "medqa_usmle": {"train": 0.6, "dev": 0.1, "test": 0.3},
    "medmcqa": {"train": 0.8, "dev": 0.1, "test": 0.1},
}


def read_mcqa(path: Path) -> Records:
    """Records of a MedAgents-style multiple-choice JSONL file."""
    records: Records = []
    seen: dict[str, int] = {}
    for number, row in read_jsonl_lines(path):
        rid = str(row.get("realidx", "")).strip()
        if not rid:
            raise NativeFormatError(path, number, "realidx", "expected a question id")
        if rid in seen:
            raise NativeFormatError(path, number, "realidx", f"id {rid!r} repeats line {seen[rid]}")
        seen[rid] = number
        question, options, key = row.get("question"), row.get("options"), row.get("answer_idx")
        if not isinstance(question, str) or not question.strip():
            raise NativeFormatError(path, number, "question", "expected a non-empty string")
        if (
            not isinstance(options, dict)
            or tuple(sorted(options)) != KEYS
            or not all(isinstance(v, str) and v.strip() for v in options.values())
        ):
            raise NativeFormatError(
                path, number, "options", f"expected non-empty options keyed {list(KEYS)}"
            )
        if key not in options:
            raise NativeFormatError(
                path, number, "answer_idx", f"expected one of {list(KEYS)}, got {key!r}"
            )
        if "answer" in row and row["answer"] != options[key]:
            raise NativeFormatError(
                path, number, "answer", f"{row['answer']!r} is not option {key} ({options[key]!r})"
            )
        record = {
            "id": rid,
            "question": question.strip(),
            "options": {k: options[k] for k in KEYS},
            "answer": key,
        }
        if "meta_info" in row:
            record["meta_info"] = row["meta_info"]
        records.append(record)
    return records


def _loader(name: str):
    def load(data_root: Path) -> dict[str, Records]:
        return seeded_split(read_mcqa(dataset_dir(data_root, name) / "test.jsonl"), RATIOS[name])

    return load


register(
    DatasetSpec(
        name="medqa_usmle",
        task_type="qa",
        instruction="Answer the USMLE-style medical question: choose the single best option (A, B, C or D).",
        loader=_loader("medqa_usmle"),
        subdir="medqa_usmle",
        description="MedQA (USMLE, 4 options; MedAgents-benchmark test file) split 60/10/30 from the seed; MIT (repo)",
    )
)
register(
    DatasetSpec(
        name="medmcqa",
        task_type="qa",
        instruction="Answer the medical entrance-exam question: choose the single best option (A, B, C or D).",
        loader=_loader("medmcqa"),
        subdir="medmcqa",
        description="MedMCQA (4 options; MedAgents-benchmark test file) split 80/10/10 from the seed; MIT (repo)",
    )
)
