"""``clinprompt data validate`` and ``clinprompt score`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import clinprompt.cli
from clinprompt.cli import app

clinprompt.cli._register()
RUN = CliRunner()

GOOD = [
    {
        "id": "a",
        "text": "Started metformin.",
        "entities": [{"start": 8, "end": 17, "type": "Drug"}],
    },
    {
        "id": "b",
        "text": "Type 2 diabetes.",
        "entities": [{"start": 0, "end": 15, "type": "Problem"}],
    },
]


def write(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_validate_clean_file(tmp_path):
    path = write(tmp_path / "good.jsonl", GOOD)
    result = RUN.invoke(app, ["data", "validate", str(path), "--task-type", "ner"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok: good (ner) records per split: good 2"


def test_validate_reports_every_problem(tmp_path):
    path = write(
        tmp_path / "bad.jsonl",
        [
            GOOD[0],
            {"id": "a", "text": "x", "entities": [{"start": 0, "end": 5, "type": "Drug"}]},
            "{oops",
        ],
    )
    result = RUN.invoke(
        app, ["data", "validate", str(path), "--task-type", "ner", "--labels", "Problem"]
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:1: field 'entities[0].type': expected one of the dataset's entity types ['Problem'], got 'Drug'",
        f"{path}:2: field 'entities[0].end': expected an offset <= len(text) (1), got 5",
        f"{path}:2: field 'entities[0].type': expected one of the dataset's entity types ['Problem'], got 'Drug'",
        f"{path}:2: field 'id': expected a unique id; 'a' is already used on line 1",
        f"{path}:3: expected one JSON object per line; invalid JSON at column 2: Expecting property name enclosed in double quotes",
    ]


def test_validate_bare_file_needs_task_type(tmp_path):
    path = write(tmp_path / "good.jsonl", GOOD)
    result = RUN.invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 2 and "--task-type" in result.stderr
    result = RUN.invoke(app, ["data", "validate", str(path), "--task-type", "nre"])
    assert result.exit_code == 2 and "unknown task type 'nre'. Did you mean 're'?" in result.stderr


def test_validate_config_checks_every_split(tmp_path):
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "train.jsonl", GOOD)
    write(tmp_path / "data" / "dev.jsonl", [GOOD[0]])
    config = tmp_path / "my_ner.yaml"
    config.write_text(
        "name: my_ner\ntask_type: ner\nsplits: {train: data/train.jsonl, dev: data/dev.jsonl}\nlabels: [Drug, Problem]\n"
    )
    result = RUN.invoke(app, ["data", "validate", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok: my_ner (ner) records per split: train 2, dev 1"
    write(
        tmp_path / "data" / "dev.jsonl",
        [{**GOOD[0], "entities": [{"start": 8, "end": 17, "type": "Dose"}]}],
    )
    result = RUN.invoke(app, ["data", "validate", str(config)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{(tmp_path / 'data' / 'dev.jsonl').resolve()}:1: field 'entities[0].type': expected one of the dataset's entity types ['Drug', 'Problem'], got 'Dose'"
    ]
    result = RUN.invoke(app, ["data", "validate", str(config), "--task-type", "qa"])
    assert result.exit_code == 2 and "disagrees" in result.stderr


def test_validate_registered_dataset_and_unknown_names():
    result = RUN.invoke(app, ["data", "validate", "syn_triage_nli"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: syn_triage_nli (nli) records per split: train ")
    result = RUN.invoke(app, ["data", "validate", "no_such_thing.jsonl"])
    assert result.exit_code == 2 and "neither a file nor a registered dataset" in result.stderr


@pytest.fixture
def gold_file(tmp_path) -> Path:
    rows = [
        {"id": f"n{i}", "premise": "p", "hypothesis": "h", "label": label}
        for i, label in enumerate(["yes", "no", "yes", "no"])
    ]
    return write(tmp_path / "gold.jsonl", rows)


def test_score_prints_metrics_with_missing_as_wrong(tmp_path, gold_file):
    pred = write(
        tmp_path / "pred.jsonl",
        [
            {"id": "n0", "label": "yes"},
            {"id": "n1", "label": "yes"},
            {"id": "n2", "label": "maybe"},
        ],
    )
    result = RUN.invoke(
        app,
        [
            "score",
            "--task-type",
            "nli",
            "--gold",
            str(gold_file),
            "--pred",
            str(pred),
            "--labels",
            "yes,no",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["task_type"] == "nli" and metrics["primary_metric"] == "macro_f1"
    assert metrics["accuracy"] == 0.25 and (
        metrics["n"],
        metrics["missing"],
        metrics["unparseable"],
    ) == (4, 1, 1)
    # yes: tp 1, fp 1, fn 1 → 0.5; no: tp 0 → 0.0
    assert metrics["macro_f1"] == pytest.approx(0.25)


def test_score_unknown_or_duplicate_id_is_an_error(tmp_path, gold_file):
    pred = write(
        tmp_path / "pred.jsonl",
        [{"id": "n0", "label": "yes"}, {"id": "zz9", "label": "no"}, {"id": "n0", "label": "no"}],
    )
    result = RUN.invoke(
        app, ["score", "--task-type", "nli", "--gold", str(gold_file), "--pred", str(pred)]
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{pred}:2: field 'id': expected an id of a record in {gold_file}; 'zz9' is not one",
        f"{pred}:3: field 'id': expected one prediction per id; 'n0' is already on line 1",
    ]


def test_score_rejects_an_invalid_gold_file_and_scores_ner(tmp_path):
    bad_gold = write(tmp_path / "gold.jsonl", [{"id": "a", "text": "x"}])
    pred = write(tmp_path / "pred.jsonl", [{"id": "a", "entities": []}])
    result = RUN.invoke(
        app, ["score", "--task-type", "ner", "--gold", str(bad_gold), "--pred", str(pred)]
    )
    assert result.exit_code == 1 and "gold.jsonl:1: field 'entities'" in result.stdout
    gold = write(tmp_path / "gold.jsonl", GOOD)
    pred = write(
        tmp_path / "pred.jsonl",
        [
            {"id": "a", "entities": [{"start": 8, "end": 17, "type": "Drug"}]},
            {"id": "b", "entities": [{"start": 7, "end": 15, "type": "Problem"}]},
        ],
    )
    result = RUN.invoke(
        app, ["score", "--task-type", "ner", "--gold", str(gold), "--pred", str(pred)]
    )
    metrics = json.loads(result.stdout)
    assert (
        metrics["strict_f1"] == 0.5
        and metrics["lenient_f1"] == 1.0
        and metrics["primary_metric"] == "strict_f1"
    )
