"""QA (options and free text), NLI and summarization: formats, round trips, parsing, scores."""

from __future__ import annotations

import pytest

from clinprompt.tasks import UNPARSEABLE, get_task_type
from clinprompt.tasks.spec import TaskSpec

QA, NLI, SUM = get_task_type("qa"), get_task_type("nli"), get_task_type("sum")
QA_SPEC = TaskSpec(name="t_qa", task_type="qa")
LONG = TaskSpec(name="t_long", task_type="qa", answer_style="long")
NLI_SPEC = TaskSpec(
    name="t_nli", task_type="nli", labels=("entailment", "neutral", "contradiction")
)
SUM_SPEC = TaskSpec(name="t_sum", task_type="sum")

MC = {
    "id": "q42",
    "question": "Which drug is first-line for type 2 diabetes?",
    "context": "ADA guidance.",
    "options": {"A": "Metformin", "B": "Insulin", "C": "Glipizide", "D": "Acarbose"},
    "answer": "A",
}
FREE = {
    "id": "q7",
    "question": "What does HbA1c measure?",
    "answer": ["average glucose", "glycated hemoglobin"],
}


def test_multiple_choice_format_and_round_trip():
    assert QA.format_input(MC, QA_SPEC) == (
        "Question: Which drug is first-line for type 2 diabetes?\nOptions:\nA. Metformin\nB. Insulin\n"
        "C. Glipizide\nD. Acarbose\nContext: ADA guidance."
    )
    assert QA.format_target(MC, QA_SPEC) == "A"
    assert QA.candidates(MC, QA_SPEC) == ["A", "B", "C", "D"]
    parsed = QA.parse("A", MC, QA_SPEC)
    assert (
        parsed.ok
        and parsed.prediction["answer"] == "A"
        and parsed.prediction["options"] == MC["options"]
    )


@pytest.mark.parametrize(
    ("output", "key"),
    [
        ("B", "B"),
        (" b.", "B"),
        ("(C)", "C"),
        ("D) Acarbose", "D"),
        ("Answer: A", "A"),
        ("The answer is C.", "C"),
        ("Option D", "D"),
        ("insulin", "B"),
        ("E", None),
        ("", None),
        ("Metformin or insulin", None),
        ("\x00\uffff", None),
    ],
)
def test_option_parsing(output, key):
    parsed = QA.parse(output, MC, QA_SPEC)
    assert parsed.prediction["answer"] == key and parsed.ok is (key is not None)
    assert parsed.prediction.get(UNPARSEABLE, False) is (key is None)


def test_free_text_answer():
    assert QA.format_input(FREE, QA_SPEC) == "Question: What does HbA1c measure?"
    assert QA.format_target(FREE, QA_SPEC) == "average glucose"
    assert QA.candidates(FREE, QA_SPEC) is None
    parsed = QA.parse(" average glucose\n", FREE, QA_SPEC)
    assert parsed.ok and parsed.prediction["answer"] == "average glucose"
    assert not QA.parse("  ", FREE, QA_SPEC).ok
    yes_no = TaskSpec(name="t_yn", task_type="qa", labels=("yes", "no", "maybe"))
    rec = {"id": "p", "question": "Does it work?", "answer": "yes"}
    assert QA.candidates(rec, yes_no) == ["yes", "no", "maybe"]
    assert QA.parse("Yes.", rec, yes_no).prediction["answer"] == "yes"


def test_qa_scores():
    mc2 = {**MC, "id": "q43", "answer": "B"}
    scores = QA.score(
        [MC, mc2], [{"id": "q42", "answer": "A"}, {"id": "q43", "answer": "Z"}], QA_SPEC
    )
    assert scores["accuracy"] == 0.5 and scores["unparseable"] == 1
    # keys A/B: A tp1 → F1 1; B fn1 → F1 0 → macro 0.5
    assert scores["macro_f1"] == pytest.approx(0.5)
    free2 = {"id": "q8", "question": "?", "answer": "left ventricle"}
    scores = QA.score(
        [FREE, free2],
        [{"id": "q7", "answer": "Glycated hemoglobin."}, {"id": "q8", "answer": "the left atrium"}],
        QA_SPEC,
    )
    assert scores["exact_match"] == 0.5 and scores["accuracy"] == 0.5
    assert scores["token_f1"] == pytest.approx(
        (1.0 + 0.5) / 2
    )  # "left atrium" vs "left ventricle": 1/2
    assert (scores["n"], scores["missing"]) == (2, 0) and "rougeL" not in scores
    long_scores = QA.score([free2], [None], LONG)
    assert long_scores["rougeL"] == 0.0 and long_scores["missing"] == 1
    assert QA.primary_metric(QA_SPEC) == "accuracy" and QA.primary_metric(LONG) == "rougeL"


NLI_REC = {
    "id": "n7",
    "premise": "Temperature 38.9 C on admission.",
    "hypothesis": "The patient has no fever.",
    "label": "contradiction",
}


def test_nli_format_parse_score():
    assert (
        NLI.format_input(NLI_REC, NLI_SPEC)
        == "Hypothesis: The patient has no fever.\nPremise: Temperature 38.9 C on admission."
    )
    assert NLI.format_target(NLI_REC, NLI_SPEC) == "contradiction"
    assert NLI.candidates(NLI_REC, NLI_SPEC) == ["entailment", "neutral", "contradiction"]
    for output, label in [
        ("contradiction", "contradiction"),
        ("Contradiction.", "contradiction"),
        ("neutral, because", "neutral"),
        ("maybe", None),
        ("", None),
    ]:
        parsed = NLI.parse(output, NLI_REC, NLI_SPEC)
        assert parsed.prediction["label"] == label and parsed.ok is (label is not None)
    golds = [
        NLI_REC,
        {**NLI_REC, "id": "n8", "label": "entailment"},
        {**NLI_REC, "id": "n9", "label": "entailment"},
    ]
    preds = [{"id": "n7", "label": "contradiction"}, {"id": "n8", "label": "bogus"}, None]
    scores = NLI.score(golds, preds, NLI_SPEC)
    assert scores["accuracy"] == pytest.approx(1 / 3)
    assert scores["macro_f1"] == pytest.approx(0.5)  # contradiction 1.0, entailment 0.0
    assert (scores["missing"], scores["unparseable"]) == (1, 1)
    assert NLI.primary_metric(NLI_SPEC) == "macro_f1"


def test_sum_round_trip_and_scores():
    rec = {
        "id": "s3",
        "source": "FINDINGS: clear lungs.",
        "summary": "IMPRESSION: no acute disease.",
    }
    assert SUM.format_input(rec, SUM_SPEC) == rec["source"]
    target = SUM.format_target(rec, SUM_SPEC)
    parsed = SUM.parse(f" {target}", rec, SUM_SPEC)
    assert (
        parsed.ok
        and parsed.prediction["summary"] == rec["summary"]
        and "source" in parsed.prediction
    )
    scores = SUM.score(
        [rec, {**rec, "id": "s4"}],
        [parsed.prediction, SUM.parse("", rec, SUM_SPEC).prediction],
        SUM_SPEC,
    )
    assert scores["rougeL"] == pytest.approx(0.5) and scores["rouge1"] == pytest.approx(0.5)
    assert scores["unparseable"] == 1 and SUM.primary_metric(SUM_SPEC) == "rougeL"
    assert SUM.candidates(rec, SUM_SPEC) is None


def test_an_over_long_vignette_keeps_its_question_and_options(tokenizer):
    """A multiple-choice question without a passage loses its opening lines, not its options;
    one with a passage loses the end of the passage (the question and options come first)."""
    from clinprompt.data.collate import encode_prompt
    from clinprompt.tasks import format_example
    from clinprompt.tasks.spec import TaskSpec

    spec = TaskSpec("mc", "qa")
    vignette = {
        "id": "q",
        "question": "A 45-year-old man presents. " * 60 + "Which drug is first-line?",
        "options": {"A": "Metformin", "B": "Insulin"},
        "answer": "A",
    }
    ex = format_example(vignette, spec)
    assert ex.keep == "end"
    text = tokenizer.decode(encode_prompt(tokenizer, ex, max_input_tokens=40))
    assert "Which drug is first-line?" in text and "B. Insulin" in text
    assert text.count("45-year-old") < 60
    with_context = {**vignette, "question": "Which drug?", "context": "Long passage. " * 80}
    ex = format_example(with_context, spec)
    assert ex.keep == "start"
    text = tokenizer.decode(encode_prompt(tokenizer, ex, max_input_tokens=40))
    assert "Which drug?" in text and "B. Insulin" in text
