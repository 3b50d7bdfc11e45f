"""Summarization as text to text: input = ``source``, target = ``summary``.

Any non-empty generation is a summary (stripped); an empty one is unparseable and scores 0.
Metrics: ROUGE-1/2/L F-measure with stemming (``rouge1``, ``rouge2``, ``rougeL``); primary ROUGE-L.
"""

from __future__ import annotations

from typing import Any

from clinprompt.tasks.base import UNPARSEABLE, Parsed, Problem, TaskType, register_task_type
from clinprompt.tasks.floors import Floor, first_sentence, with_fields
from clinprompt.tasks.metrics import rouge
from clinprompt.tasks.records import check_id, check_str, prediction
from clinprompt.tasks.spec import TaskSpec

__all__ = ["SumTask"]


class SumTask(TaskType):
    """Summarization: ``source`` → ``summary``."""

    name = "sum"
    default_instruction = "Summarize the text."
    max_new_tokens = 96

    def validate(self, record: dict[str, Any], spec: TaskSpec | None = None) -> list[Problem]:
        problems: list[Problem] = []
        check_id(record, problems)
        check_str(record, "source", problems)
        check_str(record, "summary", problems)
        return problems

    def format_input(self, record: dict[str, Any], spec: TaskSpec) -> str:
        # MTS-Dialog asks for one section of the note: say which, or the target is ambiguous.
        section = record.get("section_header")
        return f"Section: {section}\n{record['source']}" if section else record["source"]

    def format_target(self, record: dict[str, Any], spec: TaskSpec) -> str:
        return record["summary"]

    def parse(self, text: str, record: dict[str, Any], spec: TaskSpec) -> Parsed:
        summary = text.strip() if isinstance(text, str) else ""
        return prediction(record, {"summary": summary}, bool(summary), drop=("summary",))

    def score(
        self, golds: list[dict[str, Any]], preds: list[dict[str, Any] | None], spec: TaskSpec
    ) -> dict[str, float]:
        summaries: list[str | None] = []
        missing = unparseable = 0
        for pred in preds:
            summary = pred.get("summary") if pred is not None else None
            if not isinstance(summary, str):
                summary = None
            missing += pred is None
            unparseable += pred is not None and (not summary or bool(pred.get(UNPARSEABLE)))
            summaries.append(summary)
        scores = rouge(summaries, [g.get("summary", "") for g in golds])
        return {**scores, "n": len(golds), "missing": missing, "unparseable": unparseable}

    def primary_metric(self, spec: TaskSpec) -> str:
        return "rougeL"

    def input_fields(self, spec: TaskSpec) -> dict[str, tuple[type, bool]]:
        return {"source": (str, True)}

    def floor(
        self, records: list[dict[str, Any]], reference: list[dict[str, Any]] | None, spec: TaskSpec
    ) -> Floor:
        """The first sentence of the source."""
        preds = [with_fields(r, summary=first_sentence(str(r.get("source", "")))) for r in records]
        return Floor("first-sentence", "the first sentence of the source", preds)


register_task_type(SumTask())
