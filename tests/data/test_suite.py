"""Suites: loading and validation, the leakage check, ``clinprompt data stats``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from clinprompt.data.stats import length_stats, suite_stats
from clinprompt.data.suite import (
    Suite,
    SuiteError,
    check_leakage,
    list_suites,
    load_suite,
    normalize_text,
)
from clinprompt.data.synthetic import SYNTHETIC_SOURCES, SYNTHETIC_TARGETS

REPO = Path(__file__).resolve().parents[2]
OPEN_SOURCES = [
    "bc5cdr_ner", "bc2gm_ner", "ctparser_eligibility_ner", "ddi2013_ner", "biored_ner",
    "chemprot", "ddi2013_re", "biored_re", "euadr",
    "pubmedqa", "medmcqa", "covid_qa", "medicationqa", "mediqa2019_qa",
    "mediqa2019_rqe", "meqsum", "mediqa2021_qs", "aci_bench",
]  # fmt: skip
OPEN_TARGETS = ["e3c_en_clinical_ner", "ade_corpus_v2", "medqa_usmle", "nli4ct", "mts_dialog"]


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "my-suite.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------- loading
def test_builtin_suites():
    assert {"open-clinical", "synthetic"} <= set(list_suites())
    suite = load_suite("synthetic")
    assert suite.sources == SYNTHETIC_SOURCES and suite.targets == SYNTHETIC_TARGETS
    assert suite.role("syn_med_ner") == "source" and suite.role("syn_dose_re") == "target"
    assert suite.description.startswith("SYNTHETIC")
    assert load_suite(suite.path) == suite  # by path too


def test_open_clinical_matches_spec():
    suite = load_suite("open-clinical", check_names=False)
    assert list(suite.sources) == OPEN_SOURCES and list(suite.targets) == OPEN_TARGETS
    assert "mediqa_oe" not in suite.tasks
    text = (REPO / "suites" / "open-clinical.yaml").read_text()  # the repo-root symlink
    assert "mediqa_oe" in text and "ACI-Bench" in text  # the exclusion is explained


def test_unknown_builtin_suggests():
    with pytest.raises(SuiteError, match="Did you mean open-clinical"):
        load_suite("open-clinic")
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite("nowhere/suite.yaml")


def test_validation_reports_every_problem(tmp_path):
    path = write(
        tmp_path,
        {
            "name": "bad",
            "sources": ["syn_med_nerr", "syn_ade_re", "syn_ade_re"],
            "targets": ["syn_ade_re"],
            "caps": {"syn_ade_re": 0, "other": 5},
            "sorces": [],
        },
    )
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "field 'sources[0]': unknown dataset 'syn_med_nerr' (did you mean syn_med_ner" in msg
    assert "field 'sources': 'syn_ade_re' is listed 2 times" in msg
    assert "field 'targets': 'syn_ade_re' is also a source" in msg
    assert "field 'caps.syn_ade_re': expected a positive integer" in msg
    assert "field 'caps.other'" in msg
    assert "field 'sorces': unknown key (did you mean 'sources'?)" in msg


def test_empty_lists_and_bad_yaml(tmp_path):
    with pytest.raises(SuiteError, match="field 'targets': must be a non-empty list"):
        load_suite(write(tmp_path, {"sources": ["syn_med_ner"], "targets": []}))
    with pytest.raises(SuiteError, match="field 'sources': must be a non-empty list"):
        load_suite(write(tmp_path, {"targets": ["syn_dose_re"]}))
    bad = tmp_path / "broken.yaml"
    bad.write_text("sources: [a, b\n")
    with pytest.raises(SuiteError, match="broken.yaml: not valid YAML"):
        load_suite(bad)


def test_name_defaults_to_stem_and_caps(tmp_path):
    suite = load_suite(
        write(
            tmp_path,
            {"sources": ["syn_med_ner"], "targets": ["syn_dose_re"], "caps": {"syn_med_ner": 20}},
        )
    )
    assert (
        suite.name == "my-suite"
        and suite.cap("syn_med_ner") == 20
        and suite.cap("syn_dose_re") is None
    )
    assert suite.to_dict()["caps"] == {"syn_med_ner": 20}


# ---------------------------------------------------------------- leakage
def test_normalize_text():
    assert normalize_text("  Induced by  Haloperidol .\n") == normalize_text(
        "induced by haloperidol."
    )


def test_synthetic_suite_is_clean():
    report = check_leakage(load_suite("synthetic"))
    assert report.clean, str(report)
    assert report.records["syn_plan_sum"] == {"train": 200, "dev": 50, "test": 50}


def test_constructed_leak_is_caught():
    passage = "Background text here. Severe hepatotoxicity developed after ketoconazole was started last week."
    data = {
        "src": {
            "train": [
                {"id": "s1", "text": "The Patient  was given   METFORMIN for diabetes mellitus."}
            ],
            "test": [{"id": "s2", "context": passage, "question": "what?"}],
        },
        "tgt": {
            "train": [
                {
                    "id": "t0",
                    "text": "An unrelated sentence about something else entirely, long enough.",
                }
            ],
            "test": [
                {"id": "t1", "text": "the patient was given metformin for diabetes mellitus"},
                {
                    "id": "t2",
                    "premise": "Severe hepatotoxicity developed after ketoconazole was started last week.",
                    "hypothesis": "x",
                },
            ],
        },
    }
    suite = Suite(name="leaky", sources=("src",), targets=("tgt",))
    report = check_leakage(suite, loader=lambda task: data[task])
    assert not report.clean
    found = {
        (o.target_id, o.source_task, o.source_split, o.source_id, o.kind) for o in report.overlaps
    }
    assert found == {("t1", "src", "train", "s1", "exact"), ("t2", "src", "test", "s2", "sentence")}
    assert report.summary() == {("tgt", "src", "exact"): 1, ("tgt", "src", "sentence"): 1}
    assert json.loads(json.dumps(report.to_dict()))["clean"] is False


def test_load_errors_are_reported():
    def loader(task):
        raise FileNotFoundError(f"no files for {task}")

    report = check_leakage(Suite(name="x", sources=("a",), targets=("b",)), loader=loader)
    assert not report.clean and set(report.errors) == {"a", "b"}
    assert "no files for a" in report.errors["a"]


@pytest.mark.data
def test_open_clinical_raw_overlap_is_the_known_one(shared_data_root):
    """The raw suite shares text between these pairs only (PubMed abstracts reused by ADE and
    BC5CDR/BC2GM, exam boilerplate in MedQA/MedMCQA, eligibility lines in NLI4CT/ctparser);
    training removes them from the sources (tests/data/test_decontaminate.py). A new pair fails."""
    from clinprompt.data import list_datasets

    known = {s.name for s in list_datasets()}
    missing = [t for t in OPEN_SOURCES + OPEN_TARGETS if t not in known]
    assert not missing, f"suite datasets not registered: {', '.join(missing)}"
    report = check_leakage(load_suite("open-clinical"), shared_data_root)
    assert not report.errors, report.errors
    pairs = {(t, s) for (t, s, _k) in report.summary()}
    assert pairs == {
        ("ade_corpus_v2", "bc5cdr_ner"),
        ("ade_corpus_v2", "bc2gm_ner"),
        ("medqa_usmle", "medmcqa"),
        ("nli4ct", "ctparser_eligibility_ner"),
    }, str(report)


# ---------------------------------------------------------------- stats
def test_length_stats():
    s = length_stats(list(range(1, 101)))
    assert (s.mean, s.p95, s.max) == (50.5, 95, 100)
    assert length_stats([]) is None


def test_suite_stats_counts_tokens(monkeypatch):
    import clinprompt.tasks as tasks
    from clinprompt.tasks import Example

    # Stand-ins for the task types and the tokenizer: one token per whitespace-separated word.
    monkeypatch.setattr(tasks, "get_task_type", lambda name: object())
    monkeypatch.setattr(
        tasks, "format_example", lambda r, spec: Example("Do it.\n\n", "a b c", "x y")
    )

    def tokenizer(texts, add_special_tokens=False):
        return {"input_ids": [t.split() for t in texts]}

    suite = Suite(name="s", sources=("syn_med_ner",), targets=("syn_dose_re",))
    rows = suite_stats(suite, tokenizer=tokenizer, max_examples=20)
    assert [r.role for r in rows] == ["source", "target"]
    assert rows[0].splits == {"train": 200, "dev": 50, "test": 50}
    assert rows[0].examples_tokenized == 60  # 20 per split
    assert rows[0].prompt_tokens.max == 2 + 3 + 1  # head + input + cue ("Answer:")
    assert rows[0].target_tokens.max == 2 + 1  # target + EOS


def test_suite_stats_degrades_without_task_types(monkeypatch):
    import clinprompt.tasks as tasks

    def missing(name):
        raise KeyError(f"unknown task type {name!r}")

    monkeypatch.setattr(tasks, "get_task_type", missing)
    rows = suite_stats(
        Suite(name="s", sources=("syn_med_ner",), targets=("syn_dose_re",)), tokenizer=object()
    )
    assert rows[0].splits["train"] == 200 and rows[0].prompt_tokens is None
    assert "token lengths unavailable: task type 'ner'" in rows[0].note
