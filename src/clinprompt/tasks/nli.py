"""Natural language inference as text to text.

Input (the hypothesis first, so truncating a long premise, e.g. a trial report section, never
cuts it)::

    Hypothesis: The patient has no fever.
    Premise: Temperature 38.9 C on admission.

Target: the label (``contradiction``); ``candidates()`` are the dataset's labels. A generation is
matched to a label exactly, then case-insensitively ignoring punctuation, then by the label it
starts with (longest first); anything else is unparseable (scored wrong). Metrics: ``accuracy``
and ``macro_f1`` (over the classes seen in gold or predictions); the primary metric is macro F1,
so a model that learned only the label prior is visible as such.
"""

from __future__ import annotations

from typing import Any

from clinprompt.tasks.base import UNPARSEABLE, Parsed, Problem, TaskType, register_task_type
from clinprompt.tasks.floors import Floor, majority, pool_note, with_fields
from clinprompt.tasks.metrics import accuracy, macro_f1, normalize_answer
from clinprompt.tasks.records import MISSING, check_id, check_label, check_str, prediction
from clinprompt.tasks.spec import TaskSpec

__all__ = ["NLITask", "match_label"]


def match_label(output: str, labels: tuple[str, ...] | list[str]) -> str | None:
    """The label a generation names (see the module docstring), else None."""
    text = output.strip() if isinstance(output, str) else ""
    if not text:
        return None
    if not labels:
        return text
    if text in labels:
        return text
    wanted = normalize_answer(text)
    exact = [x for x in labels if normalize_answer(x) == wanted]
    if exact:
        return exact[0]
    words = wanted.split()
    for label in sorted(labels, key=len, reverse=True):
        norm = normalize_answer(label).split()
        if norm and words[: len(norm)] == norm:
            return label
    return None


class NLITask(TaskType):
    """Natural language inference: ``premise`` + ``hypothesis`` → ``label``."""

    name = "nli"
    default_instruction = "Does the premise entail, contradict, or say nothing about the hypothesis? Answer with the label only."
    max_new_tokens = 8

    def validate(self, record: dict[str, Any], spec: TaskSpec | None = None) -> list[Problem]:
        problems: list[Problem] = []
        check_id(record, problems)
        check_str(record, "premise", problems)
        check_str(record, "hypothesis", problems)
        check_label(record.get("label", MISSING), "label", spec.labels if spec else (), problems)
        return problems

    def format_input(self, record: dict[str, Any], spec: TaskSpec) -> str:
        return f"Hypothesis: {record['hypothesis']}\nPremise: {record['premise']}"

    def format_target(self, record: dict[str, Any], spec: TaskSpec) -> str:
        return record["label"]

    def parse(self, text: str, record: dict[str, Any], spec: TaskSpec) -> Parsed:
        label = match_label(text, spec.labels)
        return prediction(record, {"label": label}, label is not None, drop=("label",))

    def score(
        self, golds: list[dict[str, Any]], preds: list[dict[str, Any] | None], spec: TaskSpec
    ) -> dict[str, float]:
        gold_labels = [g.get("label") for g in golds]
        pred_labels: list[str | None] = []
        missing = unparseable = 0
        for pred in preds:
            label = pred.get("label") if pred is not None else None
            if not isinstance(label, str) or (spec.labels and label not in spec.labels):
                label = None
            missing += pred is None
            unparseable += pred is not None and (label is None or bool(pred.get(UNPARSEABLE)))
            pred_labels.append(label)
        return {
            "accuracy": accuracy(gold_labels, pred_labels),
            "macro_f1": macro_f1(gold_labels, pred_labels),
            "n": len(golds),
            "missing": missing,
            "unparseable": unparseable,
        }

    def primary_metric(self, spec: TaskSpec) -> str:
        return "macro_f1"

    def formulation(self, spec: TaskSpec) -> str:
        return "classification: option scoring of the labels (summed log-probabilities)"

    def candidates(self, record: dict[str, Any], spec: TaskSpec) -> list[str] | None:
        return list(spec.labels) or None

    def input_fields(self, spec: TaskSpec) -> dict[str, tuple[type, bool]]:
        return {"premise": (str, True), "hypothesis": (str, True)}

    def floor(
        self, records: list[dict[str, Any]], reference: list[dict[str, Any]] | None, spec: TaskSpec
    ) -> Floor:
        """Always the majority label."""
        label = majority([str(r["label"]) for r in reference or records])
        return Floor(
            "majority-label",
            f"always {label!r}, the majority label {pool_note(reference)}",
            [with_fields(r, label=label) for r in records],
            label,
        )


register_task_type(NLITask())
