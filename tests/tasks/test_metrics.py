"""Metrics on hand-computed values, and strict entity F1 against seqeval on IOB data."""

from __future__ import annotations

import random

import pytest

from clinprompt.tasks.metrics import (
    accuracy,
    entity_f1,
    exact_match,
    macro_f1,
    normalize_answer,
    prf,
    relation_f1,
    rouge,
    token_f1,
)


def test_prf_zero_denominators():
    assert prf(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert prf(1, 2, 4) == pytest.approx({"precision": 0.5, "recall": 0.25, "f1": 1 / 3})


def test_entity_f1_strict_and_lenient():
    gold = [[(0, 5, "A"), (10, 15, "B")]]
    pred = [[(0, 5, "A"), (10, 14, "B"), (20, 25, "A")]]
    # strict: tp 1 of 3 predicted, 2 gold → P 1/3, R 1/2, F1 0.4
    assert entity_f1(gold, pred, "strict") == pytest.approx(
        {"precision": 1 / 3, "recall": 0.5, "f1": 0.4}
    )
    # lenient: (10,14,B) overlaps (10,15,B) → tp 2 → P 2/3, R 1, F1 0.8
    assert entity_f1(gold, pred, "lenient") == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8}
    )


def test_lenient_each_gold_matched_once_and_type_must_agree():
    gold = [[(0, 10, "A")]]
    pred = [[(0, 3, "A"), (5, 8, "A"), (0, 10, "B")]]
    assert entity_f1(gold, pred, "lenient") == pytest.approx(
        {"precision": 1 / 3, "recall": 1.0, "f1": 0.5}
    )
    # touching spans do not overlap (end is exclusive)
    assert entity_f1([[(0, 5, "A")]], [[(5, 9, "A")]], "lenient")["f1"] == 0.0


def test_lenient_uses_a_maximum_matching():
    # p1 overlaps both golds, p2 only g1: a greedy g1→p1 would leave g2 unmatched; the optimum is 2.
    gold = [[(0, 10, "A"), (8, 12, "A")]]
    pred = [[(5, 9, "A"), (0, 2, "A")]]
    assert entity_f1(gold, pred, "lenient")["f1"] == 1.0


def test_entity_f1_micro_over_documents_and_duplicates():
    gold = [[(0, 1, "A")], [], [(2, 3, "A"), (4, 5, "A")]]
    pred = [[(0, 1, "A"), (0, 1, "A")], [(7, 8, "A")], [(2, 3, "A")]]
    # duplicates count once: tp 2, predicted 3, gold 3
    assert entity_f1(gold, pred)["f1"] == pytest.approx(2 / 3)
    assert entity_f1([], [])["f1"] == 0.0
    with pytest.raises(ValueError):
        entity_f1([[]], [])
    with pytest.raises(ValueError):
        entity_f1([[]], [[]], mode="loose")


def test_relation_f1_is_directional():
    gold = [[((0, 1), (2, 3), "r")]]
    pred = [[((0, 1), (2, 3), "r"), ((2, 3), (0, 1), "r")]]
    assert relation_f1(gold, pred) == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3})


def test_accuracy_and_macro_f1():
    assert accuracy(["a", "b", "c"], ["a", None, "b"]) == pytest.approx(1 / 3)
    assert accuracy([], []) == 0.0
    # a: tp 1 fp 0 fn 1 → 2/3; b: tp 1 fp 1 fn 1 → 1/2; None is a miss, not a class
    assert macro_f1(["a", "a", "b", "b"], ["a", "b", "b", None]) == pytest.approx(7 / 12)
    # an explicit label set includes classes never seen (F1 0)
    assert macro_f1(["a"], ["a"], labels=["a", "b"]) == pytest.approx(0.5)
    # the majority-class floor is visible: accuracy 0.75 but macro F1 ~0.43
    golds, preds = ["y", "y", "y", "n"], ["y", "y", "y", "y"]
    assert accuracy(golds, preds) == 0.75
    assert macro_f1(golds, preds) == pytest.approx((6 / 7) / 2)


def test_squad_normalisation_exact_match_and_token_f1():
    assert normalize_answer("The  Metformin, (oral)!") == "metformin oral"
    assert exact_match("The Metformin.", ["insulin", "metformin"]) == 1.0
    assert exact_match(None, "x") == 0.0
    assert token_f1("metformin 500 mg", "metformin") == pytest.approx(0.5)  # P 1/3, R 1
    assert token_f1("metformin", ["insulin", "metformin daily"]) == pytest.approx(2 / 3)
    assert token_f1("", "x") == 0.0
    assert token_f1("the", "a") == 1.0  # both normalise to nothing


def test_rouge_with_stemming():
    # cats→cat, running/runs→run: unigram overlap 2, P 2/3, R 2/4 → F 4/7; no shared bigram.
    scores = rouge(["a cat runs"], ["the cats are running"])
    assert scores == pytest.approx({"rouge1": 4 / 7, "rouge2": 0.0, "rougeL": 4 / 7})
    assert rouge(["same text here"], ["same text here"]) == pytest.approx(
        {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    )
    # mean over examples; None scores 0; best of several references
    assert rouge([None, "a b"], ["a b", ["x", "a b"]])["rougeL"] == pytest.approx(0.5)
    assert rouge([], []) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def _iob_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """Spans (token start, token end, type) of a valid IOB2 sequence."""
    spans, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
            spans.append((start, i, kind))
            start = kind = None
        if tag.startswith("B-"):
            start, kind = i, tag[2:]
    return spans


def _random_iob(rng: random.Random, n: int) -> list[str]:
    tags, previous = [], "O"
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            tag = "O"
        elif r < 0.8 or previous == "O":
            tag = f"B-{rng.choice('XYZ')}"
        else:
            tag = f"I-{previous[2:]}"
        tags.append(tag)
        previous = tag
    return tags


def test_strict_entity_f1_matches_seqeval():
    from seqeval.metrics import f1_score, precision_score, recall_score

    rng = random.Random(0)
    for _ in range(20):
        lengths = [rng.randint(1, 12) for _ in range(rng.randint(1, 6))]
        y_true = [_random_iob(rng, n) for n in lengths]
        y_pred = [t if rng.random() < 0.3 else _random_iob(rng, len(t)) for t in y_true]
        ours = entity_f1([_iob_spans(t) for t in y_true], [_iob_spans(p) for p in y_pred], "strict")
        assert ours["f1"] == pytest.approx(f1_score(y_true, y_pred))
        assert ours["precision"] == pytest.approx(precision_score(y_true, y_pred))
        assert ours["recall"] == pytest.approx(recall_score(y_true, y_pred))
