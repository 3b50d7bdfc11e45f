"""A dataset config path works wherever a dataset name does: one resolution function
(``resolve_dataset``), suites and ``data.sources``/``data.targets`` overrides, task loading with a
carved dev split, the leakage check of one target, and ``data stats`` of one dataset.

Every config written here has its own name: the registry is global to the test process.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from clinprompt.config import DataArgs
from clinprompt.data.registry import (
    UnknownDatasetError,
    get_dataset,
    load_splits,
    resolve_dataset,
)
from clinprompt.data.stats import stats_suite, suite_stats
from clinprompt.data.suite import SuiteError, check_target_leakage, load_suite
from clinprompt.tasks.records import RecordError
from clinprompt.train.data import load_task, suite_tasks


def write_config(folder: Path, name: str, *, task_type: str = "ner", **extra) -> Path:
    """A JSONL dataset config ``folder/NAME.yaml`` with a train split copied from the assets."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"r{i}", "text": f"Started metformin dose {i}.", "entities": []} for i in range(10)
    ]
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"name": name, "task_type": task_type, "splits": {"train": f"{name}.jsonl"}, **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ----------------------------------------------------------------------- resolve_dataset
def test_a_registered_name_resolves_to_its_spec():
    assert resolve_dataset("syn_med_ner") is get_dataset("syn_med_ner")


def test_a_config_path_resolves_relative_to_base_or_the_working_directory(tmp_path, monkeypatch):
    path = write_config(tmp_path / "cfg", "resolve_rel_ner")
    spec = resolve_dataset("resolve_rel_ner.yaml", base=tmp_path / "cfg")
    assert spec.name == "resolve_rel_ner" and get_dataset("resolve_rel_ner") is spec
    assert Path(spec.paths["train"]) == (tmp_path / "cfg" / "resolve_rel_ner.jsonl").resolve()
    monkeypatch.chdir(tmp_path)
    assert resolve_dataset("cfg/resolve_rel_ner.yaml") is spec  # the working directory
    assert resolve_dataset(path) is spec  # absolute, and loading again is harmless
    assert resolve_dataset("resolve_rel_ner") is spec  # and by name once registered


def test_the_brat_and_jsonl_assets_resolve(assets: Path):
    brat = resolve_dataset(assets / "user" / "brat_ner.yaml")
    assert (brat.task_type, brat.extra["format"], brat.splits) == ("ner", "brat", ("train", "test"))
    assert [r["id"] for r in load_splits(brat)["test"]] == ["doc3-s0", "doc3-s1"]
    notes = resolve_dataset(str(assets / "user" / "notes_ner.yaml"))
    assert notes.labels == ("Drug", "Problem") and notes.splits == ("train", "test")
    assert {k: len(v) for k, v in load_splits(notes.name).items()} == {"train": 6, "test": 3}


def test_unknown_names_and_missing_configs_say_what_is_accepted(tmp_path):
    with pytest.raises(UnknownDatasetError) as err:
        resolve_dataset("syn_med_nerr")
    message = str(err.value)
    assert "unknown dataset 'syn_med_nerr'. Did you mean syn_med_ner" in message
    assert "Available: " in message and "A dataset config path (a .yaml file" in message
    with pytest.raises(
        UnknownDatasetError, match=r"dataset config 'nope\.yaml' relative to .*: no such file"
    ):
        resolve_dataset("nope.yaml", base=tmp_path)


def test_a_bad_config_reports_every_problem_as_file_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad_cfg\ntask_type: nerr\nformat: brat\nsplits: {train: nowhere}\n")
    with pytest.raises(RecordError) as err:
        resolve_dataset(path)
    lines = str(err.value).splitlines()
    assert (
        lines[0]
        == f"{path}:2: field 'task_type': expected one of ner, re, qa, nli, sum, got 'nerr'"
    )
    assert lines[1].startswith(f"{path}:3: field 'format': BRAT folders give ner or re records")
    assert lines[2].startswith(f"{path}:4: field 'splits.train': expected a folder of BRAT")
    with pytest.raises(UnknownDatasetError):
        get_dataset("bad_cfg")  # nothing was registered


def test_pair_types_of_a_config_reach_the_spec_and_a_bad_one_names_its_line(tmp_path):
    good = write_config(
        tmp_path,
        "typed_re_cfg",
        task_type="re",
        labels=["causes"],
        pair_types=[["Drug", "AdverseEffect"]],
    )
    assert resolve_dataset(good).pair_types == (("Drug", "AdverseEffect"),)
    bad = write_config(tmp_path, "typed_bad_cfg", task_type="re", pair_types=[["Drug"]])
    with pytest.raises(RecordError) as err:
        resolve_dataset(bad)
    line = bad.read_text().splitlines().index("pair_types:") + 1
    assert str(err.value).startswith(
        f"{bad}:{line}: field 'pair_types': expected a list of [head type, tail type] pairs"
    )
    # a record whose relation has a signature the config does not list is refused at loading
    text = "Rash after amoxicillin."
    row = {
        "id": "r1",
        "text": text,
        "entities": [
            {"id": "T1", "start": 0, "end": 4, "type": "AdverseEffect"},
            {"id": "T2", "start": 11, "end": 22, "type": "Drug"},
        ],
        "relations": [{"head": "T1", "tail": "T2", "type": "causes"}],
    }
    (tmp_path / "typed_re_cfg.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(RecordError) as err:
        load_splits(resolve_dataset(good))
    assert (
        f"{tmp_path / 'typed_re_cfg.jsonl'}:1: field 'relations[0]': a relation "
        "AdverseEffect -> Drug, but the task's pair_types allow only Drug -> AdverseEffect"
    ) in str(err.value)
    ner = write_config(tmp_path, "typed_ner_cfg", pair_types=[["Drug", "Dose"]])
    with pytest.raises(RecordError, match="pair_types is for re tasks, not ner"):
        resolve_dataset(ner)


def test_a_name_clash_names_both_origins(tmp_path):
    first = write_config(tmp_path / "a", "clash_twice_ner")
    second = write_config(tmp_path / "b", "clash_twice_ner")
    resolve_dataset(first)
    with pytest.raises(RecordError) as err:
        resolve_dataset(second)
    message = str(err.value)
    assert message.startswith(f"{second}:1: field 'name': dataset 'clash_twice_ner' is already")
    assert (
        f"by the dataset config {first.resolve()}" in message and str(second.resolve()) in message
    )
    builtin = write_config(tmp_path / "c", "syn_med_ner")
    with pytest.raises(RecordError, match=r"already registered \(by the built-in dataset: "):
        resolve_dataset(builtin)
    with pytest.raises(RecordError, match="already registered"):  # validating sees it too
        resolve_dataset(builtin, register_it=False)


def test_an_edited_config_replaces_its_own_registration(tmp_path):
    path = write_config(tmp_path, "edited_cfg_ner", labels=["Drug"])
    assert resolve_dataset(path).labels == ("Drug",)
    path.write_text(path.read_text().replace("- Drug", "- Drug\n- Problem"))
    assert resolve_dataset(path).labels == ("Drug", "Problem")
    assert get_dataset("edited_cfg_ner").labels == ("Drug", "Problem")


# ----------------------------------------------------------------------- suites
def test_a_suite_names_config_paths_relative_to_its_file(tmp_path, monkeypatch):
    write_config(tmp_path / "suites" / "data", "suite_rel_target_ner")
    suite_file = tmp_path / "suites" / "mine.yaml"
    suite_file.write_text(
        yaml.safe_dump(
            {
                "sources": ["syn_med_ner"],
                "targets": ["data/suite_rel_target_ner.yaml"],
                "caps": {"data/suite_rel_target_ner.yaml": 5},
            }
        )
    )
    monkeypatch.chdir(tmp_path)  # the working directory does not matter: the suite's folder does
    suite = load_suite("suites/mine.yaml")
    assert suite.sources == ("syn_med_ner",) and suite.targets == ("suite_rel_target_ner",)
    assert suite.cap("suite_rel_target_ner") == 5
    _, sources, targets = suite_tasks(DataArgs(suite="suites/mine.yaml"))
    assert (sources, targets) == (["syn_med_ner"], ["suite_rel_target_ner"])


def test_a_suite_with_a_bad_config_fails_with_file_line(tmp_path):
    (tmp_path / "broken.yaml").write_text(
        "name: suite_broken\ntask_type: ner\nsplits: {train: x.jsonl}\n"
    )
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(
        yaml.safe_dump({"sources": ["syn_med_ner"], "targets": ["broken.yaml", "absent.yaml"]})
    )
    with pytest.raises(SuiteError) as err:
        load_suite(suite_file)
    message = str(err.value)
    assert f"field 'targets[0]': {tmp_path / 'broken.yaml'}:3: field 'splits.train'" in message
    assert "field 'targets[1]': dataset config 'absent.yaml' relative to" in message


def test_a_config_that_is_both_source_and_target_is_refused(tmp_path):
    path = write_config(tmp_path, "both_roles_ner")
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(
        yaml.safe_dump({"sources": [path.name, "syn_med_ner"], "targets": ["both_roles_ner"]})
    )
    with pytest.raises(SuiteError, match="'both_roles_ner' is also a source"):
        load_suite(suite_file)


def test_overrides_accept_config_paths_relative_to_the_working_directory(tmp_path, monkeypatch):
    write_config(tmp_path / "mine", "override_target_ner")
    monkeypatch.chdir(tmp_path)
    data = DataArgs(
        suite="synthetic",
        sources=["syn_med_ner"],
        targets=["mine/override_target_ner.yaml", "syn_vitals_ner"],
    )
    suite, sources, targets = suite_tasks(data)
    assert sources == ["syn_med_ner"] and targets == ["override_target_ner", "syn_vitals_ner"]
    # the user's target joins the suite, so source training is decontaminated against it too
    assert "override_target_ner" in suite.targets and suite.role("override_target_ner") == "target"
    with pytest.raises(ValueError, match=r"\['syn_vitals_nerr'\] are not targets of suite"):
        suite_tasks(DataArgs(suite="synthetic", targets=["syn_vitals_nerr"]))
    mine = "mine/override_target_ner.yaml"
    with pytest.raises(ValueError, match="both name \\['override_target_ner'\\]"):
        suite_tasks(DataArgs(suite="synthetic", sources=[mine], targets=[mine]))
    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump({"sources": ["syn_med_ner"], "targets": [mine]})
    )
    with pytest.raises(ValueError, match="is one of the suite's targets"):
        suite_tasks(DataArgs(suite="s.yaml", sources=[mine]))
    (tmp_path / "bad.yaml").write_text("name: override_bad\ntask_type: ner\n")
    with pytest.raises(RecordError, match=r"bad\.yaml:1: field 'splits'"):
        suite_tasks(DataArgs(suite="synthetic", targets=["bad.yaml"]))


# ----------------------------------------------------------------------- load_task: the dev split
def test_a_task_without_dev_gets_a_seeded_dev_split_said_once(assets, caplog):
    path = assets / "user" / "notes_ner.yaml"
    data = DataArgs(suite="synthetic", dev_fraction=0.34, seed=3)
    with caplog.at_level(logging.WARNING, logger="clinprompt.train.data"):
        first = load_task(str(path), data)
        again = load_task("user_asset_notes_ner", data)  # another stage, same process
    assert first.spec.name == "user_asset_notes_ner" and first.pool_split == "train"
    assert len(first.train) + len(first.dev) == 6 and first.dev
    assert [r["id"] for r in again.dev] == [r["id"] for r in first.dev]  # seeded
    assert not {r["id"] for r in first.dev} & {r["id"] for r in first.train}
    notes = [r.getMessage() for r in caplog.records if "no separate dev split" in r.getMessage()]
    assert notes == [
        f"user_asset_notes_ner has no separate dev split: dev is a seeded 34% of its train split "
        f"({len(first.dev)} of 6 records; data.dev_fraction=0.34, data.seed=3)"
    ]


# ----------------------------------------------------------------------- leakage of one target
def test_target_leakage_reports_text_shared_with_a_synthetic_source(tmp_path):
    source = load_splits("syn_med_ner")["train"][:2]
    rows = [
        {
            "id": "own",
            "text": "An unrelated note about the weather in a long enough sentence.",
            "entities": [],
        },
        {"id": "copied", "text": source[0]["text"], "entities": []},
    ]
    (tmp_path / "leaky.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "leaky.yaml"
    config.write_text("name: leaky_target_ner\ntask_type: ner\nsplits: {test: leaky.jsonl}\n")
    report = check_target_leakage(config, ["syn_med_ner", "syn_triage_nli"], tmp_path / "no-root")
    assert not report.clean and not report.skipped
    assert {(o.target_id, o.source_task, o.source_id, o.kind) for o in report.overlaps} == {
        ("copied", "syn_med_ner", source[0]["id"], "exact")
    }
    assert report.records["leaky_target_ner"] == {"test": 2}
    assert set(report.checked) == {"syn_med_ner", "syn_triage_nli", "leaky_target_ner"}


def test_target_leakage_says_which_sources_were_skipped_and_why(assets, tmp_path):
    spec = resolve_dataset(assets / "user" / "notes_ner.yaml")
    report = check_target_leakage(
        spec, ["syn_med_ner", "bc5cdr_ner", "chemprot", "from_elsewhere"], tmp_path / "no-root"
    )
    assert report.clean and report.checked == ("syn_med_ner", spec.name)
    assert set(report.skipped) == {"bc5cdr_ner", "chemprot", "from_elsewhere"}
    assert "does not exist" in report.skipped["bc5cdr_ner"]
    assert "not a registered dataset here" in report.skipped["from_elsewhere"]
    note = report.skipped_note().splitlines()
    assert note[0].startswith("leakage check skipped for bc5cdr_ner, chemprot: their files are not")
    assert note[1].startswith("leakage check skipped for from_elsewhere: not a registered")
    assert "leakage check skipped for bc5cdr_ner, chemprot" in str(report)
    assert json.loads(json.dumps(report.to_dict()))["skipped"] == report.skipped
    nothing = check_target_leakage(spec, ["bc5cdr_ner"], tmp_path / "no-root")
    assert nothing.skipped and not nothing.records and not nothing.overlaps


def test_target_leakage_against_itself_is_an_error(assets):
    report = check_target_leakage(
        assets / "user" / "notes_ner.yaml", ["user_asset_notes_ner", "syn_med_ner"]
    )
    assert not report.clean and "is one of the sources" in report.errors["user_asset_notes_ner"]


# ----------------------------------------------------------------------- stats of one dataset
def test_stats_of_one_dataset_config_or_name(assets, tmp_path):
    for given in (assets / "user" / "brat_ner.yaml", "user_asset_brat_ner"):
        suite = stats_suite(given)
        assert suite.name == "user_asset_brat_ner" and suite.targets == ("user_asset_brat_ner",)
    [row] = suite_stats(suite, backbone=None)
    assert (row.task, row.role, row.task_type, row.splits) == (
        "user_asset_brat_ner",
        "target",
        "ner",
        {"train": 4, "test": 2},
    )
    assert stats_suite("synthetic").name == "synthetic"
    with pytest.raises(
        SuiteError, match="unknown suite 'synthetc'.*nor is it a registered dataset"
    ):
        stats_suite("synthetc")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: stats_bad\ntask_type: ner\nsplits: {train: [oops}\n")
    with pytest.raises(RecordError, match=rf"{bad}:3: invalid YAML"):
        stats_suite(bad)
