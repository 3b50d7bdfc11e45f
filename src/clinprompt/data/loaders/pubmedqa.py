"""PubMedQA, expert-labelled PQA-L (``pubmedqa``): yes / no / maybe with the abstract.

Native: ``ori_pqal.json`` ({PMID: {QUESTION, CONTEXTS, LABELS, LONG_ANSWER, final_decision, ...}},
1,000 items) and ``test_ground_truth.json`` ({PMID: label} for the 500 test PMIDs; must agree
with ``final_decision``). Record: ``question``; ``context`` = the abstract's context paragraphs
joined by newlines, without the conclusion (``LONG_ANSWER``, kept as ``long_answer`` for
reasoning-free variants); ``options`` = {"A": "yes", "B": "no", "C": "maybe"}; ``answer`` = the
option key. Splits: test = the 500 ground-truth PMIDs; the other 500 → train/dev 90/10 from the
seed (450/50, as the official 10-fold setup). Ids = PMIDs.
"""

from __future__ import annotations

from pathlib import Path

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_json
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import seeded_split

OPTIONS = {"A": "yes", "B": "no", "C": "maybe"}
_KEY = {v: k for k, v in OPTIONS.items()}
DEV_SHARE = 0.1


def _load(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "pubmedqa")
    items_path, truth_path = folder / "ori_pqal.json", folder / "test_ground_truth.json"
    items, truth = read_json(items_path), read_json(truth_path)
    if not isinstance(items, dict) or not items:
        raise NativeFormatError(items_path, None, None, "expected an object {PMID: item}")
    if not isinstance(truth, dict) or not truth:
        raise NativeFormatError(truth_path, None, None, "expected an object {PMID: label}")
    records: Records = []
    for pmid, item in items.items():
        where = f"PMID {pmid}"
        if not isinstance(item, dict):
            raise NativeFormatError(items_path, where, None, "expected an object")
        question, contexts, decision = (
            item.get("QUESTION"),
            item.get("CONTEXTS"),
            item.get("final_decision"),
        )
        if not isinstance(question, str) or not question.strip():
            raise NativeFormatError(items_path, where, "QUESTION", "expected a non-empty string")
        if (
            not isinstance(contexts, list)
            or not contexts
            or not all(isinstance(c, str) for c in contexts)
        ):
            raise NativeFormatError(
                items_path, where, "CONTEXTS", "expected a non-empty list of strings"
            )
        if decision not in _KEY:
            raise NativeFormatError(
                items_path, where, "final_decision", f"expected yes, no or maybe, got {decision!r}"
            )
        if pmid in truth and truth[pmid] != decision:
            raise NativeFormatError(
                truth_path,
                where,
                pmid,
                f"label {truth[pmid]!r} disagrees with final_decision {decision!r} in {items_path.name}",
            )
        records.append(
            {
                "id": pmid,
                "question": question.strip(),
                "context": "\n".join(c.strip() for c in contexts),
                "options": dict(OPTIONS),
                "answer": _KEY[decision],
                "long_answer": item.get("LONG_ANSWER", ""),
            }
        )
    missing = sorted(set(truth) - set(items))
    if missing:
        raise NativeFormatError(
            truth_path, None, missing[0], f"{len(missing)} test PMIDs are not in {items_path.name}"
        )
    test = [r for r in records if r["id"] in truth]
    pool = [r for r in records if r["id"] not in truth]
    return {**seeded_split(pool, {"train": 1 - DEV_SHARE, "dev": DEV_SHARE}), "test": test}


register(
    DatasetSpec(
        name="pubmedqa",
        task_type="qa",
        instruction="Answer the biomedical research question from the abstract: yes, no or maybe.",
        loader=_load,
        subdir="pubmedqa",
        description="PubMedQA PQA-L (1,000 expert-labelled questions with abstracts); test = official 500; MIT",
    )
)
