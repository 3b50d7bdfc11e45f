"""Each task type owns its facts: input fields (for serving), generation budget and floor."""

from __future__ import annotations

from typing import Any

import pytest

from clinprompt.tasks.base import (
    Parsed,
    Problem,
    TaskType,
    get_task_type,
    register_task_type,
    unregister_task_type,
)
from clinprompt.tasks.floors import Floor, floor_predictions
from clinprompt.tasks.spec import TaskSpec

PAIR_RE = TaskSpec("pairs", "re", labels=("causes",))
JOINT_RE = TaskSpec("joint", "re", labels=("causes",), joint=True)


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        (TaskSpec("n", "ner"), {"text": (str, True)}),
        (PAIR_RE, {"text": (str, True), "entities": (list, True)}),
        (JOINT_RE, {"text": (str, True), "entities": (list, False)}),  # extracted, not given
        (
            TaskSpec("q", "qa"),
            {"question": (str, True), "context": (str, False), "options": (dict, False)},
        ),
        (TaskSpec("i", "nli"), {"premise": (str, True), "hypothesis": (str, True)}),
        (TaskSpec("s", "sum"), {"source": (str, True)}),
    ],
)
def test_input_fields(spec, fields):
    assert get_task_type(spec.task_type).input_fields(spec) == fields


def test_generation_budgets():
    budgets = {t: get_task_type(t).max_new_tokens for t in ("nli", "qa", "ner", "re", "sum")}
    assert budgets == {"nli": 8, "qa": 48, "ner": 96, "re": 96, "sum": 96}


def test_each_type_builds_its_floor():
    nli = TaskSpec("i", "nli", labels=("yes", "no"))
    recs = [
        {"id": str(i), "premise": "p", "hypothesis": "h", "label": x} for i, x in enumerate("ab")
    ]
    pool = [{"id": "t", "premise": "p", "hypothesis": "h", "label": "no"}]
    floor = get_task_type("nli").floor(recs, pool, nli)
    assert isinstance(floor, Floor) and floor.constant == "no"
    assert [p["label"] for p in floor.predictions] == ["no", "no"]
    joint = [{"id": "1", "text": "t", "entities": [{"id": "T1"}], "relations": [{"head": "T1"}]}]
    pair_floor = get_task_type("re").floor(joint, None, PAIR_RE)
    joint_floor = get_task_type("re").floor(joint, None, JOINT_RE)
    assert pair_floor.predictions[0]["entities"] == [{"id": "T1"}]  # given entities kept
    assert joint_floor.predictions[0]["entities"] == []  # a joint floor extracts nothing
    assert pair_floor.predictions[0]["relations"] == joint_floor.predictions[0]["relations"] == []
    assert joint[0]["relations"] == [{"head": "T1"}]  # the gold record is untouched


class _NoFloor(TaskType):
    """A test-only type that keeps every default of the interface."""

    name = "plain_test_type"

    def validate(self, record: dict[str, Any], spec: TaskSpec | None = None) -> list[Problem]:
        return []

    def format_input(self, record: dict[str, Any], spec: TaskSpec) -> str:
        return str(record)

    def format_target(self, record: dict[str, Any], spec: TaskSpec) -> str:
        return ""

    def parse(self, text: str, record: dict[str, Any], spec: TaskSpec) -> Parsed:
        return Parsed(dict(record), True)

    def score(self, golds, preds, spec):
        return {}


class _ConstantFloor(_NoFloor):
    name = "constant_test_type"
    max_new_tokens = 5

    def input_fields(self, spec: TaskSpec) -> dict[str, tuple[type, bool]]:
        return {"body": (str, True)}

    def floor(self, records, reference, spec) -> Floor:
        return Floor("constant", "always x", [{**r, "answer": "x"} for r in records], "x")


@pytest.fixture()
def test_types():
    types = [register_task_type(_NoFloor()), register_task_type(_ConstantFloor())]
    yield types
    for t in types:
        unregister_task_type(t.name)


def test_floor_predictions_dispatches_to_the_type(test_types):
    plain, constant = test_types
    spec = TaskSpec("c", constant.name)
    floor = floor_predictions(spec, [{"id": "1"}, {"id": "2"}])
    assert floor.kind == "constant" and [p["answer"] for p in floor.predictions] == ["x", "x"]
    assert constant.max_new_tokens == 5 and constant.input_fields(spec) == {"body": (str, True)}
    # The interface's defaults: no declared fields, a 64-token budget, no floor.
    assert plain.input_fields(spec) == {} and plain.max_new_tokens == 64
    with pytest.raises(ValueError, match="task type 'plain_test_type' has no floor"):
        floor_predictions(TaskSpec("p", plain.name), [{"id": "1"}])


def test_unregister_removes_a_type():
    register_task_type(_NoFloor())
    assert get_task_type("plain_test_type").name == "plain_test_type"
    unregister_task_type("plain_test_type")
    with pytest.raises(KeyError, match="unknown task type 'plain_test_type'"):
        get_task_type("plain_test_type")
    unregister_task_type("plain_test_type")  # removing an absent type is harmless
