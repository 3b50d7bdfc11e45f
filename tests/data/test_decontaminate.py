"""Source records sharing text with a target are dropped; the leakage check then passes."""

from __future__ import annotations

import pytest

from clinprompt.data.decontaminate import load_suite_splits
from clinprompt.data.suite import Suite, check_leakage, load_suite

LEAK = "Amphotericin B induced seizures in a patient with AIDS and cryptococcal meningitis."


def _fake(task: str):
    if task == "src":
        return {
            "train": [
                {"id": "s1", "text": LEAK.upper()},
                {"id": "s2", "text": "Unrelated sentence about gene expression in yeast cells."},
            ],
            "test": [{"id": "s3", "text": "Prior text. " + LEAK + " More text follows here."}],
        }
    return {"test": [{"id": "t1", "text": LEAK}]}


def test_decontamination_removes_shared_text_and_check_is_clean():
    suite = Suite("toy", sources=("src",), targets=("tgt",))
    assert not check_leakage(suite, loader=_fake).clean
    data = load_suite_splits(suite, loader=_fake)
    assert data.removed == {"src": {"train": ["s1"], "test": ["s3"]}}
    assert [r["id"] for r in data.splits["src"]["train"]] == ["s2"]
    assert data.splits["tgt"]["test"][0]["id"] == "t1"  # targets untouched
    assert check_leakage(suite, loader=lambda t: data.splits[t]).clean


def test_synthetic_suite_needs_no_removal():
    data = load_suite_splits(load_suite("synthetic"))
    assert data.removed_count() == 0


@pytest.mark.data
def test_open_clinical_decontaminated_is_clean(shared_data_root):
    suite = load_suite("open-clinical")
    data = load_suite_splits(suite, shared_data_root)
    report = check_leakage(suite, loader=lambda t: data.splits[t])
    assert report.clean, str(report)
    assert data.removed_count() > 0  # ADE sentences reappear in BC5CDR/BC2GM


@pytest.mark.data
def test_source_training_data_has_no_target_text(shared_data_root):
    """Training loads bc5cdr_ner (a source) without the ADE sentences (a target) it repeats."""
    from clinprompt.config import DataArgs
    from clinprompt.data.decontaminate import suite_target_text
    from clinprompt.train.data import load_task

    suite = load_suite("open-clinical")
    args = DataArgs(suite="open-clinical", data_root=str(shared_data_root), dev_fraction=0.0)
    raw = load_task("bc5cdr_ner", args)
    clean = load_task("bc5cdr_ner", args, suite=suite)
    text = suite_target_text(tuple(suite.targets), str(shared_data_root))
    assert any(text.shares(r) for r in raw.train + raw.dev)
    assert not any(text.shares(r) for r in clean.train + clean.dev)
    assert len(raw.train) - len(clean.train) > 50


@pytest.mark.data
def test_a_targets_subset_trains_the_whole_runs_sources(shared_data_root):
    """``data.targets`` chooses which targets are adapted, not which ones source training is
    kept clean of: a subset's source pools equal the whole suite's, so a ``--targets`` run
    trains the same teachers and P* (docs/benchmarks.md). ctparser_eligibility_ner shares text
    with a target other than ADE, so an ADE-only decontamination would keep those records."""
    from clinprompt.config import DataArgs
    from clinprompt.data.decontaminate import suite_target_text
    from clinprompt.train.data import load_task, suite_tasks

    root = str(shared_data_root)
    whole = DataArgs(suite="open-clinical", data_root=root, max_train_examples=300)
    subset = DataArgs(
        suite="open-clinical", data_root=root, max_train_examples=300, targets=["ade_corpus_v2"]
    )
    (suite_w, _, targets_w), (suite_s, _, targets_s) = suite_tasks(whole), suite_tasks(subset)
    assert targets_s == ["ade_corpus_v2"] and len(targets_w) == 5
    assert suite_s.targets == suite_w.targets
    name = "ctparser_eligibility_ner"
    pools = [load_task(name, d, suite=s) for d, s in ((whole, suite_w), (subset, suite_s))]
    assert [r["id"] for r in pools[0].train] == [r["id"] for r in pools[1].train]
    raw = load_task(name, DataArgs(suite="open-clinical", data_root=root))
    ade_only = suite_target_text(("ade_corpus_v2",), root)
    others = suite_target_text(tuple(suite_w.targets), root)
    shared = [r for r in raw.train if others.shares(r)]
    assert shared and not any(ade_only.shares(r) for r in shared)
