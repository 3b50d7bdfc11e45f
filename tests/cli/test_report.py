"""``clinprompt report``: the table printed and written from a run's evaluations."""

from __future__ import annotations


def test_report_writes_and_prints_the_table(cli, tmp_path):
    run = tmp_path / "run"
    for dataset in ("syn_symptom_nli", "syn_vitals_ner"):
        done = cli(
            "evaluate", "--dataset", dataset, "--limit", "6", "--floor", "--run-dir", str(run)
        )
        assert done.exit_code == 0, done.output
    out = tmp_path / "out"
    result = cli("report", str(run), "--out", str(out), "--no-plots")
    assert result.exit_code == 0, result.output
    assert "| NLI | syn_symptom_nli | macro F1 | 6 |" in result.output
    assert {p.name for p in out.iterdir()} == {
        "report.md",
        "table.csv",
        "results.csv",
        "report.json",
    }
    assert (out / "report.md").read_text(encoding="utf-8").strip() in result.output
    missing = cli("report", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
