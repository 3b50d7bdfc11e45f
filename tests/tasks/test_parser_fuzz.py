"""Parsers never raise: seeded random strings and every truncation of real targets (no hypothesis)."""

from __future__ import annotations

import random

import pytest

from clinprompt.tasks import TASK_TYPES, get_task_type
from clinprompt.tasks.ner import parse_entities
from clinprompt.tasks.relations import entity_handles, parse_relations
from clinprompt.tasks.spec import TaskSpec

TEXT = "Pt on metformin | insulin; type 2 diabetes #2 [causes] rash : naïve 头痛 metformin."
ENTS = [
    {"id": "T1", "start": 6, "end": 15, "type": "Drug"},
    {"id": "T2", "start": 18, "end": 25, "type": "Drug"},
    {"id": "T3", "start": 27, "end": 42, "type": "Problem"},
    {"id": "T4", "start": 55, "end": 59, "type": "Problem"},
    {"id": "T5", "start": 71, "end": 80, "type": "Drug"},
]
RECORDS = {
    "ner": {
        "id": "f",
        "text": TEXT,
        "entities": [{k: v for k, v in e.items() if k != "id"} for e in ENTS],
    },
    "re": {
        "id": "f",
        "text": TEXT,
        "entities": ENTS,
        "relations": [
            {"head": "T1", "tail": "T3", "type": "treats"},
            {"head": "T5", "tail": "T4", "type": "causes"},
        ],
    },
    "qa": {
        "id": "f",
        "question": "Which?",
        "options": {"A": "metformin", "B": "insulin"},
        "answer": "B",
    },
    "nli": {"id": "f", "premise": "p", "hypothesis": "h", "label": "neutral"},
    "sum": {"id": "f", "source": "s", "summary": "A short summary."},
}
SPECS = {
    "ner": TaskSpec(name="f", task_type="ner", labels=("Drug", "Problem")),
    "re": TaskSpec(name="f", task_type="re", labels=("causes", "treats")),
    "qa": TaskSpec(name="f", task_type="qa"),
    "nli": TaskSpec(name="f", task_type="nli", labels=("entailment", "neutral", "contradiction")),
    "sum": TaskSpec(name="f", task_type="sum"),
}
JOINT = TaskSpec(name="f", task_type="re", labels=("causes", "treats"), joint=True)
PIECES = [
    "Drug",
    "Problem",
    ": ",
    " | ",
    " ; ",
    " [",
    "] ",
    "causes",
    "treats",
    " #",
    "2",
    "0",
    "99",
    "metformin",
    "insulin",
    "type 2 diabetes",
    "\n",
    "Relations: ",
    "none",
    "A",
    ".",
    "(",
    ")",
    "頭",
    "é",
    "\x00",
    "  ",
    "|",
    ";",
    "#-1",
    "[[",
    "]]",
]


def random_outputs(seed: int, n: int = 150) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            out.append("".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12))))
        else:
            out.append("".join(chr(rng.randint(1, 0x3000)) for _ in range(rng.randint(0, 30))))
    return out


def truncations(text: str) -> list[str]:
    return [text[:i] for i in range(len(text) + 1)]


def check_prediction(task_type: str, pred: dict, record: dict) -> None:
    if task_type in ("ner", "re"):
        for e in pred.get("entities", []):
            assert 0 <= e["start"] < e["end"] <= len(record["text"])
    if task_type == "re":
        ids = {e["id"] for e in pred["entities"]}
        assert all(r["head"] in ids and r["tail"] in ids for r in pred["relations"])


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_task_parsers_never_raise(task_type):
    task, spec, record = get_task_type(task_type), SPECS[task_type], RECORDS[task_type]
    specs = [spec, JOINT] if task_type == "re" else [spec]
    for s in specs:
        outputs = random_outputs(TASK_TYPES.index(task_type)) + truncations(
            task.format_target(record, s)
        )
        preds = []
        for output in outputs:
            parsed = task.parse(output, record, s)
            assert parsed.prediction["id"] == "f"
            check_prediction(task_type, parsed.prediction, record)
            preds.append(parsed.prediction)
        scores = task.score([record] * len(preds), preds, s)
        assert scores["n"] == len(preds) and 0.0 <= scores[task.primary_metric(s)] <= 1.0


def test_low_level_parsers_never_raise_on_garbage():
    # The task types also guard with try/except; these call the parsing functions directly.
    handles = entity_handles(TEXT, ENTS)
    for output in random_outputs(7, 300) + truncations(
        "Drug: metformin | Drug: insulin #1 | Problem: type 2 diabetes #2 #1"
    ):
        for labels in [("Drug", "Problem"), ()]:
            entities, _ = parse_entities(output, TEXT, labels)
            assert all(0 <= e["start"] < e["end"] <= len(TEXT) for e in entities)
            relations, _ = parse_relations(output, handles, TEXT, labels)
            assert all(r["head"] in {e["id"] for e in ENTS} for r in relations)


def test_synthetic_datasets_round_trip_exactly():
    from clinprompt.data.registry import list_datasets, load_splits

    for spec in list_datasets(synthetic=True):
        if spec.task_type == "sum":
            continue
        task = get_task_type(spec.task_type)
        for record in load_splits(spec.name)["test"]:
            parsed = task.parse(task.format_target(record, spec), record, spec)
            assert parsed.ok, (spec.name, record["id"])
            output = {"ner": "entities", "re": "relations", "qa": "answer", "nli": "label"}[
                spec.task_type
            ]
            if spec.task_type == "ner":
                assert {(e["start"], e["end"], e["type"]) for e in parsed.prediction[output]} == {
                    (e["start"], e["end"], e["type"]) for e in record[output]
                }
            elif spec.task_type == "re":
                assert {tuple(r.values()) for r in parsed.prediction[output]} == {
                    (r["head"], r["tail"], r["type"]) for r in record[output]
                }
            else:
                assert parsed.prediction[output] == record[output]
