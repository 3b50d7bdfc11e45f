"""The built-in SYNTHETIC suite: registration, determinism, sizes and the record format."""

from __future__ import annotations

from collections import Counter

import pytest

from clinprompt.data import get_dataset, list_datasets, load_splits
from clinprompt.data.synthetic import (
    DEFAULT_SIZES,
    SYNTHETIC_SOURCES,
    SYNTHETIC_TARGETS,
    generate_splits,
)

ALL = SYNTHETIC_SOURCES + SYNTHETIC_TARGETS
INPUT_FIELDS = ("text", "question", "context", "premise", "hypothesis", "source")


@pytest.fixture(scope="module")
def splits() -> dict[str, dict[str, list[dict]]]:
    return {name: load_splits(name, data_root="/nonexistent") for name in ALL}


def test_registered_and_labelled_synthetic():
    assert len(SYNTHETIC_SOURCES) >= 6 and len(SYNTHETIC_TARGETS) >= 2
    assert {s.name for s in list_datasets(synthetic=True)} >= set(ALL)
    for name in ALL:
        spec = get_dataset(name)
        assert spec.synthetic and name.startswith("syn_")
        assert spec.description.startswith("SYNTHETIC")
        assert spec.instruction
    types = {get_dataset(n).task_type for n in ALL}
    assert types == {"ner", "re", "qa", "nli", "sum"}
    # every target shares its task type with a source (so transfer can help)
    source_types = {get_dataset(n).task_type for n in SYNTHETIC_SOURCES}
    assert all(get_dataset(n).task_type in source_types for n in SYNTHETIC_TARGETS)


def test_default_sizes_and_unique_ids(splits):
    for name, by_split in splits.items():
        assert {k: len(v) for k, v in by_split.items()} == DEFAULT_SIZES, name
        ids = [r["id"] for records in by_split.values() for r in records]
        assert len(ids) == len(set(ids)), name


def test_deterministic_and_seeded():
    assert generate_splits("syn_med_ner") == generate_splits("syn_med_ner")
    assert generate_splits("syn_med_ner", seed=1) != generate_splits("syn_med_ner")


def test_sizes_configurable_and_test_split_stable():
    small = generate_splits("syn_ade_re", {"train": 10, "dev": 5, "test": 7})
    assert {k: len(v) for k, v in small.items()} == {"train": 10, "dev": 5, "test": 7}
    big = generate_splits("syn_ade_re", {"train": 1000, "dev": 5, "test": 7})
    assert big["test"] == small["test"]  # the test set does not move when train grows


def test_inputs_unique_across_splits(splits):
    for name, by_split in splits.items():
        keys = [
            tuple(r.get(f) for f in INPUT_FIELDS) for records in by_split.values() for r in records
        ]
        assert len(keys) == len(set(keys)), name


def test_unknown_task():
    with pytest.raises(KeyError, match="unknown synthetic task"):
        generate_splits("syn_nope")


def _check_entities(record: dict, labels: tuple[str, ...]) -> None:
    assert record["entities"], record
    for e in record["entities"]:
        assert record["text"][e["start"] : e["end"]] == e["text"]
        assert e["type"] in labels or e["type"] in ("Drug", "AdverseEffect", "Dose"), e


def test_record_format(splits):
    for name, by_split in splits.items():
        spec = get_dataset(name)
        records = [r for rs in by_split.values() for r in rs]
        for r in records:
            if spec.task_type == "ner":
                _check_entities(r, spec.labels)
                assert {e["type"] for e in r["entities"]} <= set(spec.labels)
            elif spec.task_type == "re":
                _check_entities(r, spec.labels)
                ids = {e["id"] for e in r["entities"]}
                for rel in r["relations"]:
                    assert rel["head"] in ids and rel["tail"] in ids and rel["type"] in spec.labels
            elif spec.task_type == "qa":
                assert set(r["options"]) == set("ABCD") and r["answer"] in r["options"]
                assert r["options"][r["answer"]].lower() in r["context"].lower()
            elif spec.task_type == "nli":
                assert r["premise"] and r["hypothesis"] and r["label"] in spec.labels
            else:
                assert r["source"] and r["summary"] and len(r["summary"]) < len(r["source"])


def test_labels_balanced(splits):
    for name in ALL:
        spec = get_dataset(name)
        train = splits[name]["train"]
        if spec.task_type == "nli":
            counts = Counter(r["label"] for r in train)
            assert max(counts.values()) - min(counts.values()) <= 1, (name, counts)
        if spec.task_type == "qa":
            counts = Counter(r["answer"] for r in train)
            assert set(counts) == set("ABCD") and max(counts.values()) == 50, (name, counts)
        if spec.task_type == "re":  # positives and negatives, one and two relations
            n_rel = Counter(len(r["relations"]) for r in train)
            assert n_rel[1] > 0 and (n_rel[0] > 0 or n_rel[2] > 0), (name, n_rel)


def test_records_pass_task_validation(splits):
    from clinprompt.tasks import get_task_type

    for name, by_split in splits.items():
        spec = get_dataset(name)
        task_type = get_task_type(spec.task_type)
        for r in by_split["test"]:
            assert task_type.validate(r, spec) == [], (name, r)
