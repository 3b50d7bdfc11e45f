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
