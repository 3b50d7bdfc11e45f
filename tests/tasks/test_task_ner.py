"""NER: target format, exact round trips (repeats, nesting, overlaps, unicode), parsing, scoring."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clinprompt.tasks import UNPARSEABLE, format_example, get_task_type
from clinprompt.tasks.spec import TaskSpec

NER = get_task_type("ner")
SPEC = TaskSpec(name="t_ner", task_type="ner", labels=("Drug", "Problem"))
OPEN = TaskSpec(name="t_open", task_type="ner")  # no label list: any type


def span(text: str, mention: str, etype: str, nth: int = 1) -> dict:
    """The entity of the ``nth`` occurrence of ``mention`` in ``text``."""
    start = -1
    for _ in range(nth):
        start = text.index(mention, start + 1)
    return {"start": start, "end": start + len(mention), "type": etype}


def record(text: str, *entities: dict) -> dict:
    return {"id": "r1", "text": text, "entities": list(entities)}


def keys(entities: list[dict]) -> set[tuple[int, int, str]]:
    return {(e["start"], e["end"], e["type"]) for e in entities}


def round_trip(rec: dict, spec: TaskSpec = SPEC) -> str:
    target = NER.format_target(rec, spec)
    parsed = NER.parse(target, rec, spec)
    assert parsed.ok, target
    assert keys(parsed.prediction["entities"]) == keys(rec["entities"]), target
    for e in parsed.prediction["entities"]:
        assert e["text"] == rec["text"][e["start"] : e["end"]]
    # a generation usually comes back with a leading space and maybe a newline
    assert keys(NER.parse(f" {target}\n", rec, spec).prediction["entities"]) == keys(
        rec["entities"]
    )
    return target


T = "Started metformin 500 mg for type 2 diabetes."


def test_target_format_in_text_order():
    rec = record(T, span(T, "type 2 diabetes", "Problem"), span(T, "metformin", "Drug"))
    assert round_trip(rec) == "Drug: metformin | Problem: type 2 diabetes"
    ex = format_example(rec, replace(SPEC, instruction="Find them."))
    assert ex.input == T and ex.prompt == f"Find them.\n\n{T}\n\nAnswer:"


def test_empty_is_none():
    assert round_trip(record("No medications.")) == "none"
    assert NER.parse("None.", record("x"), SPEC).ok


def test_nested_entities_need_no_marker():
    rec = record(
        T,
        span(T, "metformin", "Drug"),
        span(T, "type 2 diabetes", "Problem"),
        span(T, "diabetes", "Problem"),
    )
    assert round_trip(rec) == "Drug: metformin | Problem: type 2 diabetes | Problem: diabetes"


def test_repeated_mentions_all_annotated_and_flat_suffix_pattern():
    t = "aspirin then aspirin; lung cancer, later cancer"
    rec = record(
        t,
        span(t, "aspirin", "Drug"),
        span(t, "aspirin", "Drug", 2),
        span(t, "lung cancer", "Problem"),
        span(t, "cancer", "Problem", 2),
    )
    assert (
        round_trip(rec) == "Drug: aspirin | Drug: aspirin | Problem: lung cancer | Problem: cancer"
    )


def test_only_later_occurrence_annotated_gets_marker():
    t = "aspirin then aspirin and aspirin"
    assert round_trip(record(t, span(t, "aspirin", "Drug", 2))) == "Drug: aspirin #2"
    assert (
        round_trip(record(t, span(t, "aspirin", "Drug"), span(t, "aspirin", "Drug", 3)))
        == "Drug: aspirin | Drug: aspirin #3"
    )


def test_same_span_two_types_and_overlapping_spans():
    t = "aspirin then aspirin"
    # the default for the second type is the next occurrence, so the same span needs its marker
    assert (
        round_trip(record(t, span(t, "aspirin", "Problem"), span(t, "aspirin", "Drug")))
        == "Drug: aspirin | Problem: aspirin #1"
    )
    t = "aaaa"
    round_trip(
        record(t, {"start": 1, "end": 3, "type": "Drug"}, {"start": 2, "end": 4, "type": "Drug"})
    )
    round_trip(
        record(
            t,
            {"start": 0, "end": 3, "type": "Drug"},
            {"start": 1, "end": 4, "type": "Problem"},
            {"start": 1, "end": 2, "type": "Drug"},
        )
    )


def test_unicode_and_awkward_mentions():
    t = "Ménière's disease → 头痛 | x | y: z, then BRCA #2 and BRCA #2 ; naïve"
    rec = record(
        t,
        span(t, "Ménière's disease", "Problem"),
        span(t, "头痛", "Problem"),
        span(t, "x | y: z", "Problem"),
        span(t, "BRCA #2", "Drug", 2),
        span(t, "naïve", "Drug"),
    )
    target = round_trip(rec)
    assert "BRCA #2 #2" in target  # a mention that looks like a marker always gets one
    round_trip(record("a | b", {"start": 0, "end": 5, "type": "Drug"}))


def test_edge_whitespace_mentions_round_trip_unstripped():
    t = "Took aspirin daily"
    rec = record(
        t, {"start": 4, "end": 13, "type": "Drug"}
    )  # " aspirin " (a data error, still exact)
    target = NER.format_target(rec, SPEC)
    assert keys(NER.parse(target, rec, SPEC).prediction["entities"]) == keys(rec["entities"])


def test_open_label_set_and_exact_duplicates_collapse():
    t = "x-ray shows pneumonia"
    rec = record(
        t,
        span(t, "pneumonia", "finding"),
        span(t, "pneumonia", "finding"),
        span(t, "x-ray", "test"),
    )
    assert round_trip(rec, OPEN) == "test: x-ray | finding: pneumonia"


@pytest.mark.parametrize(
    ("output", "expected", "ok"),
    [
        (
            "Drug: metformin | Problem: type 2 diabetes",
            {(8, 17, "Drug"), (29, 44, "Problem")},
            True,
        ),
        ("drug: Metformin", {(8, 17, "Drug")}, True),  # case-insensitive type and mention
        (
            "Problem: type 2 diabetes | Drug: metformin",
            {(8, 17, "Drug"), (29, 44, "Problem")},
            True,
        ),  # any order
        (
            "Drug: metformin | Drug: metformin",
            {(8, 17, "Drug")},
            True,
        ),  # a repeat is not a new entity
        ("Drug: metformin | Vital: 500 mg", {(8, 17, "Drug")}, False),  # unknown type skipped
        ("Drug: insulin | Drug: metformin", {(8, 17, "Drug")}, False),  # not in the text
        ("Drug: metformin | Prob", {(8, 17, "Drug")}, False),  # truncated
        ("Drug: metformin #7", set(), False),  # no 7th occurrence, and not literally in the text
        ("", set(), False),
        ("I cannot answer that.", set(), False),
    ],
)
def test_parse_generations(output, expected, ok):
    parsed = NER.parse(output, record(T), SPEC)
    assert keys(parsed.prediction["entities"]) == expected
    assert parsed.ok is ok
    assert parsed.prediction.get(UNPARSEABLE, False) is (not ok)
    assert parsed.prediction["id"] == "r1" and parsed.prediction["text"] == T


def test_parse_drops_gold_entities_and_keeps_extra_fields():
    rec = {**record(T, span(T, "metformin", "Drug")), "source": "note 7"}
    pred = NER.parse("none", rec, SPEC).prediction
    assert pred["entities"] == [] and pred["source"] == "note 7"


def test_score_strict_lenient_missing_unparseable():
    golds = [
        record(T, span(T, "metformin", "Drug"), span(T, "type 2 diabetes", "Problem")),
        {**record("aspirin"), "id": "r2"},
    ]
    preds = [NER.parse("Drug: metformin | Problem: diabetes", golds[0], SPEC).prediction, None]
    scores = NER.score(golds, preds, SPEC)
    # strict: tp 1, pred 2, gold 2 → 0.5; lenient: "diabetes" overlaps "type 2 diabetes" → 1.0
    assert scores["strict_f1"] == pytest.approx(0.5)
    assert scores["lenient_f1"] == pytest.approx(1.0)
    assert (scores["n"], scores["missing"], scores["unparseable"]) == (2, 1, 0)
    bad = {"id": "r1", "entities": [{"start": "8", "end": 17, "type": "Drug"}]}  # ill-formed entity
    assert NER.score(golds[:1], [bad], SPEC)["unparseable"] == 1
    assert NER.primary_metric(SPEC) == "strict_f1"
    assert NER.candidates(golds[0], SPEC) is None
