"""TaskSpec: what a task is, saved and read back field by field; a DatasetSpec is one plus loading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clinprompt.data.spec import DatasetSpec
from clinprompt.tasks.spec import TaskSpec, TaskSpecError

FULL = TaskSpec(
    name="my_joint_re",
    task_type="re",
    labels=("causes", "treats"),
    instruction="Find the drugs, the problems and how they relate.",
    answer_style="short",
    joint=True,
    synthetic=True,
    entity_types=("Drug", "Problem"),
    pair_classification=False,
    pair_types=(("Drug", "Problem"),),
)


def test_round_trip_through_json():
    data = json.loads(json.dumps(FULL.to_dict()))
    assert TaskSpec.from_dict(data) == FULL
    assert data["labels"] == ["causes", "treats"] and data["joint"] is True
    assert data["pair_types"] == [["Drug", "Problem"]]
    minimal = TaskSpec.from_dict({"name": "n", "task_type": "ner"})
    assert minimal == TaskSpec("n", "ner")
    assert minimal.instruction is None and minimal.labels == () and minimal.pair_classification


def test_lists_become_tuples_so_specs_compare_by_value():
    spec = TaskSpec("n", "ner", labels=["Drug"], entity_types=["X"])  # type: ignore[arg-type]
    assert spec.labels == ("Drug",) and spec.entity_types == ("X",)
    assert spec == TaskSpec("n", "ner", labels=("Drug",), entity_types=("X",))
    assert hash(spec) == hash(TaskSpec("n", "ner", labels=("Drug",), entity_types=("X",)))


def test_unknown_keys_are_ignored():
    # An evaluation's metrics.json written before TaskSpec holds a DatasetSpec's splits/description.
    old = {
        "name": "n",
        "task_type": "qa",
        "labels": [],
        "instruction": None,
        "splits": ["train", "test"],
        "answer_style": "long",
        "joint": False,
        "synthetic": False,
        "description": "a dataset",
    }
    assert TaskSpec.from_dict(old) == TaskSpec("n", "qa", answer_style="long")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "field 'name': expected a non-empty string, got str ''"),
        ({"task_type": None}, "field 'task_type': expected a non-empty string, got null"),
        ({"labels": "Drug"}, "field 'labels': expected a list of strings, got str 'Drug'"),
        ({"labels": ["Drug", 3]}, "field 'labels': expected a list of strings"),
        ({"entity_types": {"a": 1}}, "field 'entity_types': expected a list of strings"),
        ({"instruction": 5}, "field 'instruction': expected a string or null"),
        ({"answer_style": "medium"}, "field 'answer_style': expected short or long"),
        ({"joint": "yes"}, "field 'joint': expected true or false, got str 'yes'"),
        ({"synthetic": 1}, "field 'synthetic': expected true or false, got int 1"),
        ({"pair_classification": None}, "field 'pair_classification': expected true or false"),
        ({"pair_types": [["Drug"]]}, "field 'pair_types': expected a list of [head type, tail"),
        ({"pair_types": "Drug"}, "field 'pair_types': expected a list of [head type, tail"),
    ],
)
def test_errors_name_the_field(change, message):
    with pytest.raises(TaskSpecError, match="^" + re.escape(f"bank.json task 'x': {message}")):
        TaskSpec.from_dict({**FULL.to_dict(), **change}, where="bank.json task 'x'")


def test_missing_required_fields_and_non_objects():
    with pytest.raises(TaskSpecError, match="field 'task_type': .* got nothing"):
        TaskSpec.from_dict({"name": "n"})
    with pytest.raises(TaskSpecError, match="task spec: expected an object, got list"):
        TaskSpec.from_dict(["n", "ner"])
    assert issubclass(TaskSpecError, ValueError)


def test_dataset_spec_is_a_task_spec_plus_loading():
    ds = DatasetSpec(
        "ds",
        "re",
        labels=("causes",),
        joint=True,
        synthetic=True,
        paths={"test": "t.jsonl"},
        splits=("test",),
        description="a user dataset",
        extra={"config": "ds.yaml"},
    )
    assert isinstance(ds, TaskSpec)
    plain = ds.task_spec()
    assert type(plain) is TaskSpec
    assert plain == TaskSpec("ds", "re", labels=("causes",), joint=True, synthetic=True)
    assert TaskSpec.from_dict(ds.to_dict()) == plain
    assert ds.to_dict()["splits"] == ["test"] and ds.to_dict()["description"] == "a user dataset"


def test_dataset_extra_entity_types_and_pair_switch_are_lifted():
    # Loaders list RE entity types (and may switch pair scoring off) in ``extra``.
    ds = DatasetSpec(
        "ds", "re", extra={"entity_types": ["Drug", "AE"], "pair_classification": False}
    )
    assert ds.entity_types == ("Drug", "AE") and ds.pair_classification is False
    assert ds.task_spec().entity_types == ("Drug", "AE")
    assert DatasetSpec("ds", "re", extra={"pair_classification": None}).pair_classification


def test_tasks_import_nothing_above_them():
    """tasks/ is the bottom floor: no module under it imports data, prompts, eval, serve..."""
    root = Path(__file__).resolve().parents[2] / "src" / "clinprompt" / "tasks"
    above = ("data", "prompts", "eval", "serve", "train", "recipes", "cli", "decoding", "config")
    for module in root.glob("*.py"):
        for line in module.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith(("from clinprompt.", "import clinprompt.")):
                package = stripped.split()[1].split(".")[1]
                assert package not in above, f"{module.name}: {stripped}"
