"""Question answering as text to text: multiple choice (options) or free-text answers.

Input (the question first, the context last, so truncating a long passage never cuts the
question or the options)::

    Question: Which drug is first-line for type 2 diabetes?
    Options:
    A. Metformin
    B. Insulin
    Context: optional passage

Target: with options, the answer key (``A``); ``candidates()`` are the option keys. Without
options, the free-text answer (the first one when the record lists several); ``candidates()``
are the dataset's labels when it lists any (e.g. yes/no/maybe), else None.

Parsing an option answer accepts ``A``, ``a``, ``A.``, ``(A)``, ``A) Metformin``, ``Answer: A``,
``Option A`` or the option's text; anything else is unparseable (scored wrong). Metrics: option records →
``accuracy`` and ``macro_f1`` over keys; free-text records → ``exact_match`` and ``token_f1``
(SQuAD normalisation, best gold answer) and, for ``answer_style: long``, ROUGE-1/2/L.
``accuracy`` is always reported: key match for options, exact match for free text.
"""

from __future__ import annotations

import re
from typing import Any

from clinprompt.tasks.base import UNPARSEABLE, Parsed, Problem, TaskType, register_task_type
from clinprompt.tasks.floors import Floor, majority, pool_note, with_fields
from clinprompt.tasks.metrics import exact_match, macro_f1, normalize_answer, rouge, token_f1
from clinprompt.tasks.records import MISSING, check_id, check_str, describe, prediction
from clinprompt.tasks.spec import TaskSpec

__all__ = ["QATask", "match_option"]

_KEY = re.compile(
    r"^(?:the\s+)?(?:(?:correct\s+)?answer\s*(?:is)?\s*:?\s*)?(?:option\s+)?[(\[]?([^\s.)\]:,(\[]+)[)\]]?(?:[\s.):,]|$)",
    re.IGNORECASE,
)


def match_option(output: str, options: dict[str, str]) -> str | None:
    """The option key a generation names (see the module docstring), else None."""
    text = output.strip() if isinstance(output, str) else ""
    if not text or not isinstance(options, dict):
        return None
    if text in options:
        return text
    m = _KEY.match(text)
    if m:
        token = m.group(1)
        if token in options:
            return token
        folded = [k for k in options if k.lower() == token.lower()]
        if folded:
            return folded[0]
    wanted = normalize_answer(text)
    return next(
        (k for k, v in options.items() if isinstance(v, str) and normalize_answer(v) == wanted),
        None,
    )


def _answers(record: dict[str, Any]) -> list[str]:
    answer = record.get("answer")
    if isinstance(answer, str):
        return [answer]
    return [a for a in answer if isinstance(a, str)] if isinstance(answer, list) else []


def _first_answer(record: dict[str, Any]) -> str:
    """The gold answer as one string (the first of a list), for a majority."""
    answer = record.get("answer")
    if isinstance(answer, list):
        answer = answer[0] if answer else ""
    return str(answer if answer is not None else "")


class QATask(TaskType):
    """Question answering: ``question`` (+ ``context``, ``options``) → ``answer``."""

    name = "qa"
    default_instruction = (
        "Answer the question. When options are given, reply with the letter "
        "of the correct option only."
    )
    max_new_tokens = 48

    def validate(self, record: dict[str, Any], spec: TaskSpec | None = None) -> list[Problem]:
        problems: list[Problem] = []
        check_id(record, problems)
        check_str(record, "question", problems)
        if "context" in record and not isinstance(record["context"], str):
            problems.append(
                Problem(
                    "context", f"expected a string (the passage), got {describe(record['context'])}"
                )
            )
        answer = record.get("answer", MISSING)
        if record.get("options") is not None:
            options = record["options"]
            if not isinstance(options, dict) or not options:
                problems.append(
                    Problem(
                        "options",
                        f'expected an object mapping option keys to texts, e.g. {{"A": "..."}}, got {describe(options)}',
                    )
                )
                return problems
            for key, value in options.items():
                if not isinstance(value, str) or not value.strip():
                    problems.append(
                        Problem(
                            f"options.{key}",
                            f"expected a non-empty option text, got {describe(value)}",
                        )
                    )
            if not isinstance(answer, str) or answer not in options:
                problems.append(
                    Problem(
                        "answer",
                        f"expected one of the option keys {list(options)}, got {describe(answer)}",
                    )
                )
        elif isinstance(answer, list):
            if not answer or not all(isinstance(a, str) and a.strip() for a in answer):
                problems.append(
                    Problem(
                        "answer",
                        f"expected a non-empty list of non-empty strings, got {describe(answer)}",
                    )
                )
        elif not isinstance(answer, str) or not answer.strip():
            problems.append(
                Problem(
                    "answer",
                    f"expected a non-empty string (or a list of them, any is right), got {describe(answer)}",
                )
            )
        return problems

    def format_input(self, record: dict[str, Any], spec: TaskSpec) -> str:
        parts = [f"Question: {record['question']}"]
        if record.get("options"):
            parts.append(
                "Options:\n" + "\n".join(f"{k}. {v}" for k, v in record["options"].items())
            )
        if record.get("context"):
            parts.append(f"Context: {record['context']}")
        return "\n".join(parts)

    def truncation(self, record: dict[str, Any], spec: TaskSpec) -> str:
        # A multiple-choice question without a passage (a clinical vignette) asks its question
        # and lists its options last: an over-long one loses its opening lines, not its options.
        return "end" if record.get("options") and not record.get("context") else "start"

    def format_target(self, record: dict[str, Any], spec: TaskSpec) -> str:
        if record.get("options"):
            return record["answer"]
        return _answers(record)[0]

    def parse(self, text: str, record: dict[str, Any], spec: TaskSpec) -> Parsed:
        options = record.get("options")
        if options:
            key = match_option(text, options)
            return prediction(record, {"answer": key}, key is not None, drop=("answer",))
        answer = text.strip() if isinstance(text, str) else ""
        label = next(
            (x for x in spec.labels if normalize_answer(x) == normalize_answer(answer)), None
        )
        return prediction(record, {"answer": label or answer}, bool(answer), drop=("answer",))

    def score(
        self, golds: list[dict[str, Any]], preds: list[dict[str, Any] | None], spec: TaskSpec
    ) -> dict[str, float]:
        correct: list[float] = []
        keys_gold: list[str] = []
        keys_pred: list[str | None] = []
        free_gold: list[list[str]] = []
        free_pred: list[str | None] = []
        missing = unparseable = 0
        for gold, pred in zip(golds, preds, strict=True):
            answer = pred.get("answer") if pred is not None else None
            missing += pred is None
            if isinstance(answer, list):  # a prediction file may list answers: take the first
                answer = answer[0] if answer else None
            if not isinstance(answer, str) or (
                gold.get("options") and answer not in gold["options"]
            ):
                answer = None
            unparseable += pred is not None and (answer is None or bool(pred.get(UNPARSEABLE)))
            if gold.get("options"):
                keys_gold.append(gold["answer"])
                keys_pred.append(answer)
                correct.append(float(answer == gold["answer"]))
            else:
                free_gold.append(_answers(gold))
                free_pred.append(answer)
                correct.append(exact_match(answer, _answers(gold)))
        out: dict[str, float] = {"accuracy": sum(correct) / len(correct) if correct else 0.0}
        if keys_gold:
            out["macro_f1"] = macro_f1(keys_gold, keys_pred)
        if free_gold:
            out["exact_match"] = sum(
                exact_match(p, g) for p, g in zip(free_pred, free_gold, strict=True)
            ) / len(free_gold)
            out["token_f1"] = sum(
                token_f1(p, g) for p, g in zip(free_pred, free_gold, strict=True)
            ) / len(free_gold)
            if spec.answer_style == "long":
                out.update(rouge(free_pred, free_gold))
        return {**out, "n": len(golds), "missing": missing, "unparseable": unparseable}

    def primary_metric(self, spec: TaskSpec) -> str:
        """``rougeL`` for long free-text answers, else ``accuracy`` (exact match for free text)."""
        return "rougeL" if spec.answer_style == "long" else "accuracy"

    def formulation(self, spec: TaskSpec) -> str:
        if spec.labels:
            return "option scoring of the option keys, or of the labels (summed log-probabilities)"
        return "multiple choice: option scoring of the option keys; free text: generation"

    def candidates(self, record: dict[str, Any], spec: TaskSpec) -> list[str] | None:
        if record.get("options"):
            return list(record["options"])
        return list(spec.labels) or None

    def input_fields(self, spec: TaskSpec) -> dict[str, tuple[type, bool]]:
        return {"question": (str, True), "context": (str, False), "options": (dict, False)}

    def floor(
        self, records: list[dict[str, Any]], reference: list[dict[str, Any]] | None, spec: TaskSpec
    ) -> Floor:
        """The most frequent option letter, the majority of a label set, else an empty answer."""
        pool = reference or records
        if any(r.get("options") for r in pool):
            letter = majority([_first_answer(r) for r in pool if r.get("options")])
            return Floor(
                "majority-option",
                f"always option {letter}, the most frequent answer letter {pool_note(reference)}",
                [with_fields(r, answer=letter) for r in records],
                letter,
            )
        if spec.labels:  # a label set (yes/no/maybe): the majority label
            label = majority([_first_answer(r) for r in pool])
            return Floor(
                "majority-label",
                f"always {label!r}, the majority answer {pool_note(reference)}",
                [with_fields(r, answer=label) for r in records],
                label,
            )
        return Floor("empty", "an empty answer", [with_fields(r, answer="") for r in records])


register_task_type(QATask())
