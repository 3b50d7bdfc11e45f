"""``clinprompt data list`` and ``data stats``: what the dataset commands print; a dataset config
path works wherever a dataset name does (evaluate, stats, score, suites, overrides), and its
problems are reported as file:line before any backbone is loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clinprompt.data.synthetic import SYNTHETIC_SOURCES, SYNTHETIC_TARGETS

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_cli_data_stats_json(cli):
    result = cli("data", "stats", "synthetic", "--no-tokens", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["suite"] == "synthetic" and len(payload["tasks"]) == len(
        SYNTHETIC_SOURCES + SYNTHETIC_TARGETS
    )
    result = cli("data", "stats", "no-such-suite")
    assert result.exit_code == 1 and "unknown suite" in result.output


def test_data_list_shows_every_registered_dataset(cli):
    from clinprompt.data.registry import list_datasets

    result = cli("data", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    specs = list_datasets()
    assert [r["name"] for r in rows] == [s.name for s in specs]
    by_name = {r["name"]: r for r in rows}
    for spec in specs:
        assert by_name[spec.name] == {
            "name": spec.name,
            "task_type": spec.task_type,
            "labels": len(spec.labels),
            "synthetic": spec.synthetic,
            "description": spec.description,
        }
    assert set(SYNTHETIC_SOURCES + SYNTHETIC_TARGETS) <= {r["name"] for r in rows if r["synthetic"]}
    table = cli("data", "list", env={"COLUMNS": "250"})
    assert table.exit_code == 0 and f"{len(rows)} registered datasets" in table.output
    assert "syn_symptom_nli" in table.output and "SYNTHETIC" in table.output


def test_data_list_filters_by_task_type(cli):
    result = cli("data", "list", "--task-type", "nli", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and {r["task_type"] for r in rows} == {"nli"}
    assert "syn_symptom_nli" in {r["name"] for r in rows}
    bad = cli("data", "list", "--task-type", "ocr")
    assert bad.exit_code == 2 and "unknown task type 'ocr'" in bad.output


# ------------------------------------------------------------- a dataset config path as --dataset
USER_CONFIGS = {"brat": "brat_ner.yaml", "jsonl": "notes_ner.yaml"}


@pytest.fixture
def no_backbone(monkeypatch):
    """Every way a command loads a backbone fails the test: config problems come before compute."""

    def refuse(*args, **kwargs):
        raise AssertionError("a backbone was loaded before the dataset config was checked")

    for where in (
        "clinprompt.backbone.load_backbone",
        "clinprompt.train.workspace.load_backbone",
        "clinprompt.recipes.evaluate.load_backbone",
    ):
        monkeypatch.setattr(where, refuse)


@pytest.fixture
def bad_config(tmp_path) -> Path:
    path = tmp_path / "my_n2c2.yaml"
    path.write_text(
        "name: cli_bad_n2c2\ntask_type: ner\nformat: brat\nsplits: {train: n2c2/train}\n"
    )
    return path


@pytest.mark.parametrize("kind", sorted(USER_CONFIGS))
def test_evaluate_floor_and_stats_take_a_config_path(cli, tmp_path, monkeypatch, kind):
    config = ASSETS / "user" / USER_CONFIGS[kind]
    monkeypatch.chdir(config.parent)  # a relative path, from the working directory
    out = tmp_path / "floor"
    result = cli("evaluate", "--dataset", config.name, "--floor", "--out", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    name = {"brat": "user_asset_brat_ner", "jsonl": "user_asset_notes_ner"}[kind]
    assert (metrics["dataset"], metrics["method"], metrics["split"]) == (name, "floor", "test")
    assert metrics["n"] == {"brat": 2, "jsonl": 3}[kind]
    assert json.loads((out / "config.json").read_text())["dataset"] == name
    stats = cli("data", "stats", config.name, "--no-tokens", "--json")
    assert stats.exit_code == 0, stats.output
    [row] = json.loads(stats.output)["tasks"]
    assert row["task"] == name and row["splits"] == (
        {"train": 4, "test": 2} if kind == "brat" else {"train": 6, "test": 3}
    )


def test_a_bad_config_fails_with_file_line_before_any_backbone(cli, bad_config, no_backbone):
    expected = f"{bad_config}:4: field 'splits.train': expected a folder of BRAT .txt/.ann files"
    for floor in (["--floor"], []):
        result = cli("evaluate", "--dataset", str(bad_config), *floor, "--out", "x")
        assert result.exit_code == 2 and expected in result.output, result.output
    stats = cli("data", "stats", str(bad_config))  # before the tokenizer loads, too
    assert stats.exit_code == 1 and expected in stats.output
    suite = bad_config.parent / "suite.yaml"
    suite.write_text(f"sources: [syn_med_ner]\ntargets: [{bad_config.name}]\n")
    for command in ("adapt", "baseline", "run"):
        for override in (f"data.targets=[{bad_config}]", f"data.suite={suite}"):
            result = cli(command, "smoke", f"output_dir={bad_config.parent / 'runs'}", override)
            assert result.exit_code == 2 and expected in result.output, (command, result.output)
    # one target: adapting a bank (the config comes before the bank is even looked at) and
    # its baselines
    for command in (
        ["adapt", "smoke", "--bank", "builtin", "--dataset", str(bad_config), "--out", "x"],
        ["adapt", "smoke", "--bank", "no/such/bank", "--dataset", str(bad_config)],
        ["baseline", "smoke", "--dataset", str(bad_config), "--method", "pt"],
    ):
        result = cli(*command)
        assert result.exit_code == 2 and expected in result.output, (command, result.output)


def test_a_clashing_or_missing_config_is_a_clear_error(cli, tmp_path, no_backbone):
    (tmp_path / "t.jsonl").write_text('{"id": "a", "text": "x", "entities": []}\n')
    clash = tmp_path / "clash.yaml"
    clash.write_text("name: syn_med_ner\ntask_type: ner\nsplits: {test: t.jsonl}\n")
    result = cli("evaluate", "--dataset", str(clash), "--floor")
    assert result.exit_code == 2
    assert (
        f"{clash}:1: field 'name': dataset 'syn_med_ner' is already registered (by the built-in dataset"
        in result.output
    )
    missing = cli("evaluate", "--dataset", str(tmp_path / "my_n2c2.yaml"), "--floor")
    assert missing.exit_code == 2 and "my_n2c2.yaml': no such file" in missing.output
    unknown = cli("evaluate", "--dataset", "my_n2c2", "--floor")
    assert unknown.exit_code == 2 and "unknown dataset 'my_n2c2'" in unknown.output
    assert "A dataset config path (a .yaml file" in unknown.output


def test_score_takes_type_and_labels_from_dataset(cli, tmp_path):
    config = ASSETS / "user" / "notes_ner.yaml"
    gold = ASSETS / "user" / "notes" / "test.jsonl"
    rows = [json.loads(line) for line in gold.read_text().splitlines()]
    pred = tmp_path / "pred.jsonl"
    pred.write_text(
        "".join(json.dumps({"id": r["id"], "entities": r["entities"]}) + "\n" for r in rows)
    )
    result = cli("score", "--dataset", str(config), "--gold", str(gold), "--pred", str(pred))
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["task_type"] == "ner" and metrics["strict_f1"] == 1.0
    # the dataset's labels are enforced on the gold file: a type outside them is reported
    narrow = tmp_path / "narrow.jsonl"
    narrow.write_text(gold.read_text().replace('"Problem"', '"Finding"'))
    bad = cli("score", "--dataset", str(config), "--gold", str(narrow), "--pred", str(pred))
    assert bad.exit_code == 1 and "expected one of the dataset's entity types" in bad.output
    disagree = cli(
        "score",
        "--dataset",
        str(config),
        "--task-type",
        "qa",
        "--gold",
        str(gold),
        "--pred",
        str(pred),
    )
    assert disagree.exit_code == 2 and "disagrees" in disagree.output
    neither = cli("score", "--gold", str(gold), "--pred", str(pred))
    assert neither.exit_code == 2 and "--task-type" in neither.output


def test_a_run_with_a_suite_naming_a_config_target(cli, tmp_path):
    """The suite's target is a dataset config relative to the suite file; the teachers train the
    source decontaminated against it."""
    shutil.copytree(ASSETS / "user" / "notes", tmp_path / "suites" / "data" / "notes")
    (tmp_path / "suites" / "data" / "run_notes.yaml").write_text(
        "name: cli_run_notes_ner\ntask_type: ner\n"
        "splits: {train: notes/train.jsonl, test: notes/test.jsonl}\n"
    )
    suite = tmp_path / "suites" / "mine.yaml"
    suite.write_text("sources: [syn_med_ner]\ntargets: [data/run_notes.yaml]\n")
    result = cli(
        "run",
        "smoke",
        f"output_dir={tmp_path / 'runs'}",
        f"data.suite={suite}",
        "stages=[teachers]",
        "train.steps=1",
    )
    assert result.exit_code == 0, result.output
    assert "teachers ran" in result.output
