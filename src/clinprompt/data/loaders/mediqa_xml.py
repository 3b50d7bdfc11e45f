"""MEDIQA 2019 XML (``mediqa2019_qa``, ``mediqa2019_rqe``).

* ``mediqa2019_qa`` (Task 3, answer relevance): ``<Question QID><QuestionText/><AnswerList>
  <Answer AID SystemRank ReferenceRank ReferenceScore><AnswerText/></Answer>...``. One record per
  (question, candidate answer): ``question`` = the consumer question, ``context`` = the candidate
  answer, ``options`` = {"A": "relevant", "B": "not relevant"}; ``answer`` = A when
  ReferenceScore >= 3 ("correct and complete" 4 or "correct but incomplete" 3, the task's notion
  of a correct answer), B for 1–2. ``reference_score``, ``reference_rank``, ``system_rank``,
  ``qid`` and ``url`` are kept. train = TrainingSet1 (LiveQA-Med) + TrainingSet2 (Alexa), dev =
  ValidationSet, test = TestSet-wLabels. Ids ``<live|alexa|val|test>-<AID>``.
* ``mediqa2019_rqe`` (Task 2, recognizing question entailment): ``<pair pid value><chq/><faq/>``.
  premise = CHQ (the consumer's question), hypothesis = FAQ; ``label`` = ``entailment`` for
  value="true", ``not_entailment`` for "false" (``pair_type`` kept when given). train/dev/test =
  the AMIA2016 training and validation files and the labelled test file. Ids ``<split>-<pid>``.
  Training pair 5860 has an empty FAQ in the release and is left out (:data:`RQE_ERRATA`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, require_file
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records

QA_OPTIONS = {"A": "relevant", "B": "not relevant"}
QA_FILES = {
    "train": [
        ("live", "MEDIQA2019-Task3-QA-TrainingSet1-LiveQAMed.xml"),
        ("alexa", "MEDIQA2019-Task3-QA-TrainingSet2-Alexa.xml"),
    ],
    "dev": [("val", "MEDIQA2019-Task3-QA-ValidationSet.xml")],
    "test": [("test", "MEDIQA2019-Task3-QA-TestSet-wLabels.xml")],
}
RQE_FILES = {
    "train": "MEDIQA2019-Task2-RQE-TrainingSet-AMIA2016.xml",
    "dev": "MEDIQA2019-Task2-RQE-ValidationSet-AMIA2016.xml",
    "test": "MEDIQA2019-Task2-RQE-TestSet-wLabels.xml",
}
RQE_LABELS = {"true": "entailment", "false": "not_entailment"}
# Known defects of the release, left out (any other empty question raises): (split, pid) → why.
RQE_ERRATA = {("train", "5860"): "empty <faq>"}


def parse_xml(path: Path) -> ET.Element:
    """The root element of an XML file, with the line of a syntax error."""
    require_file(path)
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as e:
        raise NativeFormatError(path, e.position[0], None, f"invalid XML: {e}") from None


def _int_attr(path: Path, where: str, node: ET.Element, name: str) -> int:
    value = node.get(name, "")
    if not value.strip().lstrip("-").isdigit():
        raise NativeFormatError(path, where, name, f"expected an integer attribute, got {value!r}")
    return int(value)


def read_mediqa_qa(path: Path, prefix: str) -> Records:
    """One record per (question, candidate answer) of a MEDIQA 2019 Task 3 file."""
    records: Records = []
    questions = parse_xml(path).findall("Question")
    if not questions:
        raise NativeFormatError(path, None, "Question", "expected <Question> elements")
    for q in questions:
        qid = q.get("QID", "")
        text = (q.findtext("QuestionText") or "").strip()
        if not qid or not text:
            raise NativeFormatError(
                path, f"Question {qid!r}", "QuestionText", "expected a QID and a question text"
            )
        for a in q.iter("Answer"):
            aid = a.get("AID", "")
            where = f"Answer {aid!r}"
            score = _int_attr(path, where, a, "ReferenceScore")
            if score not in (1, 2, 3, 4):
                raise NativeFormatError(path, where, "ReferenceScore", f"expected 1-4, got {score}")
            answer_text = (a.findtext("AnswerText") or "").strip()
            if not aid or not answer_text:
                raise NativeFormatError(
                    path, where, "AnswerText", "expected an AID and an answer text"
                )
            records.append(
                {
                    "id": f"{prefix}-{aid}",
                    "question": text,
                    "context": answer_text,
                    "options": dict(QA_OPTIONS),
                    "answer": "A" if score >= 3 else "B",
                    "reference_score": score,
                    "reference_rank": _int_attr(path, where, a, "ReferenceRank"),
                    "system_rank": _int_attr(path, where, a, "SystemRank"),
                    "qid": qid,
                    "url": (a.findtext("AnswerURL") or "").strip(),
                }
            )
    return records


def read_rqe(path: Path, split: str) -> Records:
    """One NLI record per ``<pair>`` of a MEDIQA 2019 Task 2 file."""
    records: Records = []
    pairs = parse_xml(path).findall("pair")
    if not pairs:
        raise NativeFormatError(path, None, "pair", "expected <pair> elements")
    for p in pairs:
        pid, value = p.get("pid", ""), p.get("value")
        where = f"pair pid={pid!r}"
        if (split, pid) in RQE_ERRATA:
            continue
        if value not in RQE_LABELS:
            raise NativeFormatError(
                path, where, "value", f"expected 'true' or 'false', got {value!r}"
            )
        chq, faq = (p.findtext("chq") or "").strip(), (p.findtext("faq") or "").strip()
        if not pid or not chq or not faq:
            raise NativeFormatError(
                path, where, "chq/faq", "expected a pid and non-empty <chq> and <faq>"
            )
        record: dict[str, Any] = {
            "id": f"{split}-{pid}",
            "premise": chq,
            "hypothesis": faq,
            "label": RQE_LABELS[value],
        }
        if p.get("type"):
            record["pair_type"] = p.get("type")
        records.append(record)
    return records


def _unique(records: Records, path: Path) -> Records:
    seen: set[str] = set()
    for r in records:
        if r["id"] in seen:
            raise NativeFormatError(path, None, "id", f"{r['id']!r} occurs twice")
        seen.add(r["id"])
    return records


def _load_qa(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "mediqa2019_qa")
    return {
        split: _unique(
            [r for prefix, name in files for r in read_mediqa_qa(folder / name, prefix)], folder
        )
        for split, files in QA_FILES.items()
    }


def _load_rqe(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "mediqa2019_rqe")
    return {
        split: _unique(read_rqe(folder / name, split), folder / name)
        for split, name in RQE_FILES.items()
    }


register(
    DatasetSpec(
        name="mediqa2019_qa",
        task_type="qa",
        instruction="Is the passage a correct answer to the consumer health question? A: relevant, B: not relevant.",
        loader=_load_qa,
        subdir="mediqa2019_qa",
        description="MEDIQA 2019 task 3 answer relevance (ReferenceScore >= 3 = relevant); licence not stated",
    )
)
register(
    DatasetSpec(
        name="mediqa2019_rqe",
        task_type="nli",
        labels=("entailment", "not_entailment"),
        instruction="Does answering the second (hypothesis) question also answer the first (premise) question, fully or partially? entailment or not_entailment.",
        loader=_load_rqe,
        subdir="mediqa2019_rqe",
        description="MEDIQA 2019 task 2 recognizing question entailment (CHQ premise, FAQ hypothesis); licence not stated",
    )
)
