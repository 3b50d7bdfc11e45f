"""COVID-QA (``covid_qa``): extractive QA on CORD-19 articles, SQuAD v2 layout.

Native: ``{"data": [{"paragraphs": [{"document_id", "context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}`` — 98 articles' full texts, often
30,000+ characters.

Record choice: ``answer`` = the list of answer strings (whitespace-trimmed; ``answer_style``
short). A whole article cannot fit any budget, so ``context`` is a passage of the article of
about :data:`WINDOW` characters that contains the answer, cut at whitespace, at an offset drawn
from the seed and the question id (so the answer's place in the passage carries no signal);
``document_id`` and ``context_start`` (offset of the passage in the article) are kept. The native
``answer_start`` is often off by the answer's leading space; the answer is located at it, else at
the occurrence nearest to it, and must occur in the article.
Splits: seeded 80/10/10 by article (no article crosses splits). Ids = native question ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_json
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.splits import DEFAULT_SEED, hash_fraction, seeded_split

FILE = "200423_covidQA.json"
WINDOW = 1000
RATIOS = {"train": 0.8, "dev": 0.1, "test": 0.1}


def locate(context: str, answer: str, hint: int) -> int:
    """Start of ``answer`` in ``context``: at ``hint`` if it is there, else the nearest occurrence (-1: none)."""
    if context.startswith(answer, hint):
        return hint
    found, index = [], context.find(answer)
    while index >= 0:
        found.append(index)
        index = context.find(answer, index + 1)
    return min(found, key=lambda i: abs(i - hint)) if found else -1


def passage(
    context: str, start: int, end: int, key: str, window: int = WINDOW, seed: int = DEFAULT_SEED
) -> tuple[int, int]:
    """``[a, b)`` of a ~``window``-character passage holding ``context[start:end]``, cut at spaces."""
    size = max(window, end - start + 100)
    slack = size - (end - start)
    a = max(0, start - int(hash_fraction(seed, key) * slack))
    b = min(len(context), a + size)
    a = max(0, b - size)
    if a > 0:  # move forward to a word start, never past the answer
        space = context.find(" ", a, start)
        a = space + 1 if space >= 0 else a
    if b < len(context):  # move back to a word end, never before the answer
        space = context.rfind(" ", end, b)
        b = space if space >= 0 else b
    return a, b


def _question(path: Path, context: str, doc: Any, qa: Any, where: str) -> dict[str, Any]:
    if (
        not isinstance(qa, dict)
        or not isinstance(qa.get("question"), str)
        or not qa["question"].strip()
    ):
        raise NativeFormatError(path, where, "question", "expected a non-empty question string")
    answers = qa.get("answers")
    if qa.get("is_impossible") or not isinstance(answers, list) or not answers:
        raise NativeFormatError(
            path,
            where,
            "answers",
            "expected at least one answer (unanswerable questions are not supported)",
        )
    texts, spans = [], []
    for j, ans in enumerate(answers):
        text = ans.get("text", "").strip() if isinstance(ans, dict) else ""
        hint = ans.get("answer_start") if isinstance(ans, dict) else None
        if not text or not isinstance(hint, int):
            raise NativeFormatError(path, where, f"answers[{j}]", "expected {text, answer_start}")
        start = locate(context, text, hint if hint >= 0 else 0)
        if start < 0:
            raise NativeFormatError(
                path, where, f"answers[{j}].text", f"{text[:60]!r} does not occur in the article"
            )
        if text not in texts:
            texts.append(text)
        spans.append((start, start + len(text)))
    qid = str(qa.get("id"))
    a, b = passage(context, spans[0][0], spans[0][1], qid)
    return {
        "id": qid,
        "question": qa["question"].strip(),
        "context": context[a:b],
        "answer": texts,
        "document_id": str(doc),
        "context_start": a,
    }


def read_covid_qa(path: Path) -> Records:
    """All COVID-QA records (one per question), unsplit."""
    data = read_json(path)
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list) or not articles:
        raise NativeFormatError(
            path, None, "data", "expected a SQuAD-style object with a non-empty 'data' list"
        )
    records: Records = []
    seen: set[str] = set()
    for i, article in enumerate(articles):
        for k, para in enumerate(
            article.get("paragraphs", []) if isinstance(article, dict) else []
        ):
            where = f"data[{i}].paragraphs[{k}]"
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not context.strip():
                raise NativeFormatError(path, where, "context", "expected the article text")
            for n, qa in enumerate(para.get("qas") or []):
                record = _question(
                    path, context, para.get("document_id", f"article{i}"), qa, f"{where}.qas[{n}]"
                )
                if record["id"] in seen:
                    raise NativeFormatError(
                        path, f"{where}.qas[{n}]", "id", f"question id {record['id']} repeats"
                    )
                seen.add(record["id"])
                records.append(record)
    if not records:
        raise NativeFormatError(path, None, "data", "expected at least one question")
    return records


def _load(data_root: Path) -> dict[str, Records]:
    records = read_covid_qa(dataset_dir(data_root, "covid_qa") / FILE)
    return seeded_split(records, RATIOS, group=lambda r: r["document_id"])


register(
    DatasetSpec(
        name="covid_qa",
        task_type="qa",
        answer_style="short",
        instruction="Answer the question about COVID-19 with a short span copied from the passage.",
        loader=_load,
        subdir="covid_qa",
        description="COVID-QA (deepset; CORD-19 articles, SQuAD style); ~1,000-character answer passages; seeded 80/10/10 by article; Apache-2.0 (repo)",
    )
)
