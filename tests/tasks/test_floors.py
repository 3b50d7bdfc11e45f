"""Floors per task type: what they predict and how they score."""

from __future__ import annotations

import pytest

from clinprompt.tasks.base import get_task_type
from clinprompt.tasks.floors import first_sentence, floor_predictions
from clinprompt.tasks.spec import TaskSpec


def score(spec, golds, floor):
    task = get_task_type(spec.task_type)
    return task.score(golds, floor.predictions, spec)[task.primary_metric(spec)]


def test_nli_majority_label_from_the_training_pool():
    spec = TaskSpec("toy_nli", "nli", labels=("entailment", "neutral", "contradiction"))
    train = [
        {"id": f"t{i}", "premise": "p", "hypothesis": "h", "label": lab}
        for i, lab in enumerate(["neutral"] * 3 + ["entailment"])
    ]
    test = [
        {"id": f"e{i}", "premise": "p", "hypothesis": "h", "label": lab}
        for i, lab in enumerate(["neutral", "entailment", "neutral", "contradiction"])
    ]
    floor = floor_predictions(spec, test, train)
    assert floor.kind == "majority-label" and floor.constant == "neutral"
    assert "4 training records" in floor.description
    assert [p["label"] for p in floor.predictions] == ["neutral"] * 4
    assert score(spec, test, floor) == pytest.approx(
        (2 / 3) / 3
    )  # macro F1: only 'neutral' has F1 = 2/3
    assert get_task_type("nli").score(test, floor.predictions, spec)["accuracy"] == 0.5


def test_multiple_choice_most_frequent_letter_and_label_qa():
    spec = TaskSpec("toy_mc", "qa")
    opts = {"A": "x", "B": "y", "C": "z"}
    test = [
        {"id": str(i), "question": "q", "options": opts, "answer": a} for i, a in enumerate("ABBC")
    ]
    floor = floor_predictions(spec, test)  # no pool: over the test records, said so
    assert (
        floor.kind == "majority-option"
        and floor.constant == "B"
        and "optimistic" in floor.description
    )
    assert score(spec, test, floor) == 0.5
    yn = TaskSpec("toy_yn", "qa", labels=("yes", "no", "maybe"))
    recs = [
        {"id": str(i), "question": "q", "answer": a} for i, a in enumerate(["no", "yes", "yes"])
    ]
    assert floor_predictions(yn, recs).constant == "yes"
    free = TaskSpec("toy_free", "qa")
    assert (
        floor_predictions(free, [{"id": "1", "question": "q", "answer": "aspirin"}]).kind == "empty"
    )


def test_ner_and_re_empty_predictions_score_zero():
    ner = TaskSpec("toy_ner", "ner", labels=("Drug",))
    recs = [
        {"id": "1", "text": "took aspirin", "entities": [{"start": 5, "end": 12, "type": "Drug"}]}
    ]
    floor = floor_predictions(ner, recs)
    assert (
        floor.kind == "empty" and floor.predictions[0]["entities"] == [] and recs[0]["entities"]
    )  # gold untouched
    assert score(ner, recs, floor) == 0.0
    re_spec = TaskSpec("toy_re", "re", labels=("causes",))
    rel = [
        {
            "id": "1",
            "text": "aspirin causes rash",
            "entities": [
                {"id": "T1", "start": 0, "end": 7, "type": "Drug"},
                {"id": "T2", "start": 15, "end": 19, "type": "AE"},
            ],
            "relations": [{"head": "T1", "tail": "T2", "type": "causes"}],
        }
    ]
    floor = floor_predictions(re_spec, rel)
    assert (
        floor.predictions[0]["relations"] == []
        and floor.predictions[0]["entities"] == rel[0]["entities"]
    )
    assert score(re_spec, rel, floor) == 0.0


def test_summarization_first_sentence():
    spec = TaskSpec("toy_sum", "sum")
    recs = [
        {
            "id": "1",
            "source": "Patient has a cough. Started on antibiotics! More text.",
            "summary": "Patient has a cough.",
        }
    ]
    floor = floor_predictions(spec, recs)
    assert (
        floor.kind == "first-sentence" and floor.predictions[0]["summary"] == "Patient has a cough."
    )
    assert score(spec, recs, floor) == pytest.approx(1.0)
    assert first_sentence("Doctor: hello\nPatient: hi there") == "Doctor: hello"
    assert first_sentence("   ") == ""


def test_unknown_type_and_empty_records_are_reported():
    with pytest.raises(ValueError, match="no records"):
        floor_predictions(TaskSpec("x", "ner"), [])
    with pytest.raises(ValueError, match="no floor for task type 'pos'"):
        floor_predictions(TaskSpec("x", "pos"), [{"id": "1"}])
