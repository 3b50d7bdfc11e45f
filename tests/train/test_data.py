"""Task data for training: subsampling, missing splits, k-shot draws, the closest source."""

from __future__ import annotations

import pytest

from clinprompt.config import DataArgs
from clinprompt.data.registry import get_dataset
from clinprompt.tasks import get_task_type
from clinprompt.train import data as train_data
from clinprompt.train.data import closest_source, encode_records, load_task, sample


def _records(n, prefix="r"):
    return [
        {"id": f"{prefix}{i}", "premise": f"p {i}", "hypothesis": "h", "label": "entailment"}
        for i in range(n)
    ]


def test_sample_is_deterministic_and_keeps_order():
    records = _records(50)
    a, b = sample(records, 10, seed=3), sample(records, 10, seed=3)
    assert a == b and len(a) == 10 and a != sample(records, 10, seed=4)
    assert [records.index(r) for r in a] == sorted(records.index(r) for r in a)
    assert sample(records, None, 0) == records and sample(records, 99, 0) == records


def test_missing_splits_draw_from_what_exists(monkeypatch):
    monkeypatch.setattr(
        train_data, "load_splits", lambda name, root=None: {"test": _records(40, "t")}
    )
    task = load_task("syn_symptom_nli", DataArgs(dev_fraction=0.25, max_train_examples=20))
    assert task.pool_split == "test" and len(task.train) == 20 and len(task.dev) == 10
    # dev is carved out of the pool, disjoint from train
    assert not {r["id"] for r in task.train} & {r["id"] for r in task.dev}
    monkeypatch.setattr(
        train_data,
        "load_splits",
        lambda name, root=None: {"train": _records(30), "dev": _records(5, "d")},
    )
    task = load_task("syn_symptom_nli", DataArgs(max_dev_examples=3))
    assert task.pool_split == "train" and len(task.train) == 30 and len(task.dev) == 3
    monkeypatch.setattr(train_data, "load_splits", lambda name, root=None: {"train": []})
    with pytest.raises(ValueError, match="no records in any split"):
        load_task("syn_symptom_nli", DataArgs())


def test_encoded_labels_cover_only_the_target(tokenizer):
    spec = get_dataset("syn_symptom_nli")
    (x,) = encode_records(_records(1), spec, tokenizer, DataArgs(max_input_tokens=8))
    target = [t for t in x.labels if t != -100]
    assert x.labels[: x.prompt_length] == [-100] * x.prompt_length
    assert target == x.input_ids[x.prompt_length :] and target[-1] == tokenizer.eos_token_id


def test_closest_source_is_of_the_same_type(tiny):
    sources = [
        get_dataset(n) for n in ("syn_med_ner", "syn_lab_ner", "syn_ade_re", "syn_triage_nli")
    ]
    emb = tiny.model.get_input_embeddings().weight
    assert (
        closest_source(get_dataset("syn_symptom_nli"), sources, emb, tiny.tokenizer)
        == "syn_triage_nli"
    )
    assert closest_source(get_dataset("syn_vitals_ner"), sources, emb, tiny.tokenizer) in (
        "syn_med_ner",
        "syn_lab_ner",
    )


def _re_record(rid: str, n_entities: int, related: bool = True) -> dict:
    names = ["aspirin", "rash", "ibuprofen", "nausea"][:n_entities]
    text = " and ".join(names) + "."
    ents, start = [], 0
    for i, name in enumerate(names):
        ents.append(
            {
                "id": f"T{i}",
                "start": start,
                "end": start + len(name),
                "type": "Drug" if i % 2 == 0 else "AE",
            }
        )
        start += len(name) + len(" and ")
    rels = [{"head": "T0", "tail": "T1", "type": "causes"}] if related and n_entities > 1 else []
    return {"id": rid, "text": text, "entities": ents, "relations": rels}


def test_pair_re_training_pool_counts_units(monkeypatch):
    """Training draws what the model answers: ordered entity pairs; a sentence with fewer than
    two entities teaches nothing and is not drawn; max_train_examples counts pairs."""
    records = [_re_record(f"r{i}", n) for i, n in enumerate([0, 1, 2, 3, 0, 2])]
    monkeypatch.setattr(
        train_data, "load_splits", lambda name, root=None: {"train": records, "dev": records[:3]}
    )
    task = load_task("syn_ade_re", DataArgs(max_train_examples=None))
    # 2 + 6 + 2 ordered pairs; the records with 0 or 1 entity give none
    assert len(task.train) == 10 and all("pair" in u for u in task.train)
    assert len(task.dev) == 2
    # a unit is its own only unit, so encoding the drawn units gives one example each
    re_type = get_task_type("re")
    assert all(re_type.units(u, task.spec) == [u] for u in task.train)
    limited = load_task("syn_ade_re", DataArgs(max_train_examples=4))
    assert len(limited.train) == 4
    # units of one record are drawn independently: over seeds, a record's pairs are split
    picks = [
        {(u["id"], u["pair"]["head"], u["pair"]["tail"]) for u in sample(task.train, 3, seed=s)}
        for s in range(20)
    ]
    assert any(len({rid for rid, _, _ in p}) > 1 for p in picks)


def _ner_records(n_with: int, n_without: int, prefix: str = "n") -> list[dict]:
    with_ = [
        {
            "id": f"{prefix}w{i}",
            "text": f"Started aspirin on day {i}.",
            "entities": [{"start": 8, "end": 15, "type": "Drug", "text": "aspirin"}],
        }
        for i in range(n_with)
    ]
    without = [
        {"id": f"{prefix}o{i}", "text": f"Slept well on day {i}.", "entities": []}
        for i in range(n_without)
    ]
    # interleaved, as a corpus is: empty and non-empty sentences alternate in file order
    return [
        r for pair in zip(without, with_ + [None] * n_without, strict=False) for r in pair if r
    ][: n_with + n_without] + with_[n_without:]


def test_max_empty_fraction_caps_empty_answers_in_training_only(monkeypatch):
    records = _ner_records(10, 30)
    assert len(records) == 40
    dev = _ner_records(2, 8, prefix="d")
    monkeypatch.setattr(
        train_data, "load_splits", lambda spec, root=None: {"train": records, "dev": dev}
    )
    task = load_task("syn_med_ner", DataArgs())
    assert sum(not r["entities"] for r in task.train) == 30  # the data's own share by default
    task = load_task("syn_med_ner", DataArgs(), max_empty_fraction=0.2)
    empty = [r for r in task.train if not r["entities"]]
    # every non-empty record stays; 0.2 * 10 / 0.8 = 2.5 -> 2 empty ones, a share of 2/12 <= 0.2
    assert len(task.train) - len(empty) == 10 and len(empty) == 2
    assert [records.index(r) for r in task.train] == sorted(records.index(r) for r in task.train)
    assert task.train == load_task("syn_med_ner", DataArgs(), max_empty_fraction=0.2).train
    assert sum(not r["entities"] for r in task.dev) == 8  # dev keeps the data's share
    only = load_task("syn_med_ner", DataArgs(), max_empty_fraction=0.0).train
    assert len(only) == 10 and all(r["entities"] for r in only)
    # the cap acts before max_train_examples is drawn
    capped = load_task("syn_med_ner", DataArgs(max_train_examples=6), max_empty_fraction=0.2)
    assert len(capped.train) == 6 and set(map(str, capped.train)) <= set(map(str, task.train))


def test_max_empty_fraction_leaves_tasks_without_empty_answers_alone(monkeypatch):
    monkeypatch.setattr(train_data, "load_splits", lambda spec, root=None: {"train": _records(12)})
    task = load_task("syn_symptom_nli", DataArgs(dev_fraction=0.0), max_empty_fraction=0.0)
    assert len(task.train) == 12
    # a pool with no non-empty answer is kept whole rather than emptied
    monkeypatch.setattr(
        train_data, "load_splits", lambda spec, root=None: {"train": _ner_records(0, 5)}
    )
    assert (
        len(load_task("syn_med_ner", DataArgs(dev_fraction=0.0), max_empty_fraction=0.1).train) == 5
    )


def test_max_empty_fraction_counts_pair_units_of_relation_extraction(monkeypatch):
    """Pair-given RE: a unit answering ``none`` (an unrelated ordered pair) is an empty answer."""
    spec = get_dataset("syn_dose_re")
    record = {
        "id": "r0",
        "text": "Started omeprazole 40 mg daily.",
        "entities": [
            {"id": "T1", "start": 8, "end": 18, "type": "Drug", "text": "omeprazole"},
            {"id": "T2", "start": 19, "end": 24, "type": "Dose", "text": "40 mg"},
        ],
        "relations": [{"head": "T1", "tail": "T2", "type": "has_dose"}],
    }
    task_type = get_task_type(spec.task_type)
    units = task_type.units(record, spec)
    assert len(units) == 2  # syn_dose_re gives the pairs: one unit per ordered pair
    # T1 -> T2 is related (has_dose), T2 -> T1 answers none
    assert [task_type.answers_none(u, spec) for u in units] == [False, True]
    assert task_type.answers_none({**record, "relations": []}, spec)


def test_max_empty_fraction_is_validated():
    from clinprompt.config import load_config
    from clinprompt.config.build import ConfigError

    assert load_config("smoke", ["adapt.max_empty_fraction=0.25"]).adapt.max_empty_fraction == 0.25
    with pytest.raises(ConfigError, match=r"adapt.max_empty_fraction.*\[0, 1\)"):
        load_config("smoke", ["adapt.max_empty_fraction=1"])
