"""``clinprompt data list`` and ``data stats``: what the dataset commands print."""

from __future__ import annotations

import json

from clinprompt.data.synthetic import SYNTHETIC_SOURCES, SYNTHETIC_TARGETS


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
