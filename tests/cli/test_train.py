"""The training commands: ``clinprompt run`` resumes a run directory; config errors at once."""

from __future__ import annotations


def test_cli_run_and_errors(cli, tmp_path):
    # One teacher of one step: the second `run` finds the stage finished.
    overrides = [f"output_dir={tmp_path}", "stages=[teachers]", "data.sources=[syn_med_ner]"]
    first = cli("run", "smoke", *overrides, "train.steps=1")
    assert first.exit_code == 0, first.output
    assert "teachers ran" in first.output
    ok = cli("run", "smoke", *overrides, "train.steps=1")
    assert ok.exit_code == 0, ok.output
    assert "teachers skipped" in ok.output and "run.json" in ok.output
    bad = cli("distill", "smoke", "train.lr=-1", "prompt.tokenz=3")
    assert (
        bad.exit_code == 2
        and "train.lr: -1.0" in bad.output
        and "prompt.tokenz: unknown key; did you mean prompt.tokens?" in bad.output
    )
