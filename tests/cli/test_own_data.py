"""Your own dataset from the command line, on the tiny model: ``adapt --bank`` prints the entries
and the exact commands to run next; those commands (baseline, evaluate --all, report, serve) run
as printed."""

from __future__ import annotations

import shlex

from fastapi.testclient import TestClient
from tests.recipes.conftest import CONFIGS, make_source_bank

from clinprompt.prompts.bank import PromptBank


def test_adapt_a_bank_then_the_printed_commands(cli, tiny, tmp_path, monkeypatch):
    bank = make_source_bank(tmp_path / "bank", tiny)
    before = (bank / "bank.json").read_text()
    monkeypatch.chdir(tmp_path)
    config = str(CONFIGS["brat"])
    result = cli(
        "adapt", "smoke", "adapt.modes=[full,zero]", "--bank", str(bank), "--dataset", config,
        "--out", "mine",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert "leakage check against 2 source(s): no overlap" in out
    assert "bank mine: 4 tasks (2 sources) on P*" in out
    assert "user_asset_brat_ner " in out and "factors + own P*" in out
    assert "zero-shot: mean of source factors" in out  # the smoke profile's adapt.zero_shot
    run = "runs/user_asset_brat_ner"  # the default run directory
    printed = [line.strip() for line in out.splitlines() if line.strip().startswith("clinprompt ")]
    baseline = (
        f"clinprompt baseline smoke 'adapt.modes=[full,zero]' --dataset {config} --run-dir {run}"
    )
    assert printed[:4] == [
        baseline,
        f"clinprompt evaluate --run-dir {run} --all",
        f"clinprompt report {run}",
        "clinprompt serve --bank mine",
    ]
    assert printed[4] == (
        f"clinprompt evaluate --dataset {config} --artifact mine --task user_asset_brat_ner "
        f"--setting full --run-dir {run}"
    )
    assert (bank / "bank.json").read_text() == before  # --out: BANK untouched

    # ---- the printed commands, as printed (PT only, to keep it short)
    trained = cli(*shlex.split(baseline)[1:], "--method", "pt")
    assert trained.exit_code == 0, trained.output
    assert "pt    user_asset_brat_ner full:" in trained.output
    evaluated = cli(*shlex.split(printed[1])[1:])
    assert evaluated.exit_code == 0, evaluated.output
    assert "evaluated 5, already on disk 0" in evaluated.output  # floor, zero-shot, MPT x2, PT
    reported = cli(*shlex.split(printed[2])[1:], "--no-plots")
    assert reported.exit_code == 0, reported.output
    assert "| NER | user_asset_brat_ner | strict F1 | 2 |" in reported.output

    seen = {}
    monkeypatch.setattr(
        "clinprompt.serve.server.run_server", lambda app, **kw: seen.update(app=app, **kw)
    )
    served = cli(*shlex.split(printed[3])[1:], "--watch", "0")
    assert served.exit_code == 0, served.output
    with TestClient(seen["app"]) as client:
        tasks = {t["name"] for t in client.get("/v1/tasks").json()["tasks"]}
        answer = client.post(
            "/v1/predict",
            json={"task": "user_asset_brat_ner", "inputs": [{"id": "x", "text": "Took aspirin."}]},
        )
    assert {"user_asset_brat_ner", "user_asset_brat_ner.k0"} <= tasks
    assert answer.status_code == 200 and answer.json()["outputs"][0]["id"] == "x"
    assert "user_asset_brat_ner" in PromptBank.load(tmp_path / "mine").tasks


def test_adapt_options_go_together(cli, tmp_path):
    alone = cli("adapt", "smoke", "--bank", "builtin")
    assert alone.exit_code == 2 and "--bank and --dataset go together" in alone.output
    stray = cli("adapt", "smoke", "--out", str(tmp_path / "x"))
    assert stray.exit_code == 2 and "--out and --run-dir go with --bank" in stray.output
    builtin = cli("adapt", "smoke", "--bank", "builtin", "--dataset", str(CONFIGS["jsonl"]))
    assert builtin.exit_code == 2
    assert "refusing to adapt into the built-in bank" in builtin.output
    assert "write a copy with --out NEWBANK" in builtin.output
