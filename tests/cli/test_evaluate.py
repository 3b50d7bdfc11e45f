"""``clinprompt evaluate``: its options are EvalArgs' fields, declared once; a floor end to end;
``--all`` over a run directory."""

from __future__ import annotations

import dataclasses
import json

from clinprompt.eval.args import EvalArgs


def test_every_evalargs_field_is_an_option_with_its_help(cli, command_options):
    options = command_options("evaluate")
    fields = dataclasses.fields(EvalArgs)
    assert [f.name for f in fields] + ["floor", "every"] == list(options)
    for f in fields:
        option = options[f.name]
        assert option.opts == ["--" + f.name.replace("_", "-")]
        assert option.help == f.metadata["help"]
        # --dataset is required unless --all (the command says so: see below), so the parser
        # does not require it
        assert not option.required
        assert option.default == (None if f.name == "dataset" else f.default)
    # Today's plain switches: --generate, --floor and --all, with no --no-* form.
    assert options["generate"].is_flag and not options["generate"].secondary_opts
    assert options["floor"].is_flag and not options["floor"].secondary_opts
    assert options["every"].opts == ["--all"] and not options["every"].secondary_opts
    missing = cli("evaluate", "--floor")
    assert missing.exit_code == 2 and "--dataset is required (or --all with --run-dir RUN)" in (
        missing.output
    )
    shown = cli("evaluate", "--help", env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    for f in fields:
        assert "--" + f.name.replace("_", "-") in shown.output
    assert "(default: the dataset's name, or the bank's only task)" in shown.output


def test_evaluate_floor_writes_the_options_as_its_config(cli, tmp_path):
    out = tmp_path / "floor"
    result = cli(
        "evaluate", "--dataset", "syn_symptom_nli", "--limit", "4", "--floor", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "syn_symptom_nli/test: n=4" in result.output
    config = json.loads((out / "config.json").read_text())
    expected = EvalArgs(dataset="syn_symptom_nli", limit=4, out=str(out), method="floor")
    assert config == expected.to_dict()


def test_evaluate_reports_errors_without_a_traceback(cli):
    result = cli("evaluate", "--dataset", "syn_symptom_nli", "--split", "validation", "--floor")
    assert result.exit_code == 2 and "has no 'validation' split" in result.output


def test_evaluate_all_needs_a_run_and_refuses_what_the_run_decides(cli, tmp_path):
    no_run = cli("evaluate", "--all")
    assert no_run.exit_code == 2 and "--all needs --run-dir RUN" in no_run.output
    both = cli("evaluate", "--all", "--run-dir", str(tmp_path), "--dataset", "x", "--floor")
    assert both.exit_code == 2
    assert "--dataset, --floor do not go with it" in both.output
    empty = cli("evaluate", "--all", "--run-dir", str(tmp_path))
    assert empty.exit_code == 2 and "config.json is missing" in empty.output
