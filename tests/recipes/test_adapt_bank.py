"""One new target from an existing bank, on the tiny model: a BRAT folder config and a JSONL
config go through adapt (into a copy of the bank), the baselines on the same plan, evaluate
--all, the report and a served /v1/predict; the refusals come before any compute."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from tests.recipes.conftest import CONFIGS, OVERRIDES, SOURCES, make_source_bank

from clinprompt.artifacts import read_json
from clinprompt.config import load_config
from clinprompt.data.registry import load_splits, resolve_dataset
from clinprompt.prompts.bank import BankError, PromptBank
from clinprompt.recipes.adapt import AdaptError, source_tasks
from clinprompt.recipes.evaluate import evaluate_recorded_run
from clinprompt.recipes.report import report_runs
from clinprompt.recipes.target_run import adapt_bank, recorded_artifacts, train_baselines_on
from clinprompt.serve.app import create_app
from clinprompt.serve.engine import EngineArgs, Limits, ServeEngine


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def source_bank(tiny, tmp_path_factory) -> Path:
    return make_source_bank(tmp_path_factory.mktemp("source") / "bank", tiny)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_a_config_is_adapted_evaluated_reported_and_served(tiny, source_bank, tmp_path, kind):
    config, args = CONFIGS[kind], load_config("smoke", OVERRIDES)
    name = resolve_dataset(config).name
    before = files_of(source_bank)
    said: list[str] = []
    run, new = tmp_path / "run", tmp_path / "new_bank"

    # ---- adapt into a copy of the bank; the bank itself is untouched
    result = adapt_bank(
        args, source_bank, config, out=new, run_dir=run, backbone=tiny, say=said.append
    )
    assert files_of(source_bank) == before
    bank = PromptBank.load(new, expect=tiny.fingerprint)
    tasks = [name, f"{name}.k2", f"{name}.k0"]
    assert list(bank.tasks) == [*SOURCES, *tasks] and result.bank == new
    assert torch.equal(bank.shared(), PromptBank.load(source_bank).shared())
    assert [(r.method, r.setting, r.task, r.path) for r in result.artifacts] == [
        ("mpt", s, t, str(new)) for s, t in zip(("full", "k2", "k0"), tasks, strict=True)
    ]
    full, kshot, zero = (bank.entry(t) for t in tasks)
    train = resolve_dataset(config)
    assert full.own_shared and kshot.own_shared and not zero.own_shared
    assert (full.spec.name, full.spec.labels, full.dataset) == (name, train.labels, name)
    assert full.meta["train"]["train_examples"] == result.data["train_examples"]
    assert kshot.meta["shots"] == 2 and kshot.meta["train"]["train_steps"] == 2
    # zero-shot from the closest source of the same type (the only NER source)
    assert zero.meta["zero_shot"] == "factors of the closest source syn_med_ner"
    assert torch.equal(bank.task_tensors(f"{name}.k0")["u"], bank.task_tensors("syn_med_ner")["u"])
    # the synthetic sources are available here: the leakage check ran, and found nothing
    assert set(result.leakage.checked) == {*SOURCES, name} and not result.leakage.skipped
    assert "leakage check against 2 source(s): no overlap" in said
    assert read_json(run / "adapt" / "leakage.json")["clean"] is True
    # no dev split in either config: it is carved from train and said so
    assert result.data["dev_from"].startswith("carved from the train split") or (
        result.data["dev_examples"] == 0
    )
    assert any(line.startswith("data: ") for line in said)
    saved = read_json(run / "config.json")
    assert saved["data"]["targets"] == [str(config.resolve())] and saved["output_dir"] == str(run)

    # ---- the baselines: the same plan (records, budgets) in the same run directory
    base = train_baselines_on(args, config, run_dir=run, backbone=tiny)
    assert [(r.method, r.setting) for r in base.artifacts] == [
        ("pt", "full"),
        ("lora", "full"),
        ("pt", "k2"),
        ("lora", "k2"),
    ]
    assert base.notes and "pt k0" in base.notes[0]
    pt = PromptBank.load(run / "baselines" / "pt" / "bank")
    assert pt.entry(f"{name}.k2").meta["shot_ids"] == kshot.meta["shot_ids"]  # the same draw
    assert pt.entry(name).meta["train"]["train_examples"] == full.meta["train"]["train_examples"]
    assert len(recorded_artifacts(run)) == 7

    # ---- evaluate --all: every artifact, the floor and the zero-shot backbone
    results = evaluate_recorded_run(run, backbone=tiny)
    done = {(r.summary["method"], r.summary["setting"]) for r in results if r is not None}
    assert done == {
        ("floor", "full"),
        ("zeroshot", "k0"),
        ("mpt", "full"),
        ("mpt", "k2"),
        ("mpt", "k0"),
        ("pt", "full"),
        ("pt", "k2"),
        ("lora", "full"),
        ("lora", "k2"),
    }
    n_test = len(load_splits(train)["test"])
    assert all(r.n == n_test for r in results if r is not None)
    assert all(r is None for r in evaluate_recorded_run(run, backbone=tiny))  # resumable

    # ---- the report: the suite runs' table, on the user's target
    _, paths = report_runs([run], plots=False)
    table = paths["markdown"].read_text(encoding="utf-8")
    assert "| type | target | metric | n | Floor | Zero-shot | PT | LoRA | MPT |" in table
    assert f"| NER | {name} | strict F1 | {n_test} |" in table
    provenance = read_json(run / "provenance.json")
    assert {"adapt", "baseline", "evaluate"} <= set(provenance["stages"])

    # ---- served: the new bank answers /v1/predict for the target
    engine = ServeEngine(tiny, new, Limits(), EngineArgs(wait_ms=5))
    with TestClient(create_app(engine)) as client:
        inputs = [{"id": "a", "text": "Started metformin for type 2 diabetes."}]
        response = client.post(
            "/v1/predict", json={"task": name, "inputs": inputs, "max_new_tokens": 8}
        )
    assert response.status_code == 200, response.text
    [out] = response.json()["outputs"]
    assert out["id"] == "a" and isinstance(out["prediction"]["entities"], list)
    text = inputs[0]["text"]
    assert all(0 <= e["start"] < e["end"] <= len(text) for e in out["prediction"]["entities"])


def test_adapting_into_the_bank_itself_and_again(tiny, source_bank, tmp_path):
    bank = tmp_path / "bank"
    shutil.copytree(source_bank, bank)
    args = load_config("smoke", [*OVERRIDES, "adapt.modes=[full]"])
    first = adapt_bank(args, bank, CONFIGS["jsonl"], run_dir=tmp_path / "run", backbone=tiny)
    assert first.bank == bank and "user_asset_notes_ner" in PromptBank.load(bank).tasks
    header = (bank / "bank.json").read_text()
    again = adapt_bank(args, bank, CONFIGS["jsonl"], run_dir=tmp_path / "run", backbone=tiny)
    assert again.kept == ["user_asset_notes_ner"] and again.artifacts == first.artifacts
    assert (bank / "bank.json").read_text() == header
    assert source_tasks(PromptBank.load(bank)) == list(SOURCES)  # the target is no source


@pytest.fixture
def no_backbone(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a backbone was loaded before the refusal")

    monkeypatch.setattr("clinprompt.train.workspace.load_backbone", refuse)


def test_refusals_come_before_any_backbone(source_bank, tmp_path, no_backbone):
    args = load_config("smoke", OVERRIDES)
    with pytest.raises(BankError, match="refusing to adapt into the built-in bank"):
        adapt_bank(args, "builtin", CONFIGS["jsonl"], run_dir=tmp_path / "r0")
    with pytest.raises(AdaptError, match="'syn_med_ner' is one of the bank's source tasks"):
        adapt_bank(args, source_bank, "syn_med_ner", out=tmp_path / "b", run_dir=tmp_path / "r1")
    with pytest.raises(BankError, match="is not a prompt bank"):
        adapt_bank(args, tmp_path, CONFIGS["jsonl"], out=tmp_path / "b", run_dir=tmp_path / "r2")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: adapt_bank_bad\ntask_type: ner\nformat: brat\nsplits: {train: nowhere}\n")
    with pytest.raises(ValueError, match=rf"{bad}:4: field 'splits.train'"):
        adapt_bank(args, "no-such-bank", bad, out=tmp_path / "b")


def test_a_run_directory_adapted_from_another_bank_is_refused(tiny, source_bank, tmp_path):
    args = load_config("smoke", [*OVERRIDES, "adapt.modes=[zero]"])
    run = tmp_path / "run"
    adapt_bank(args, source_bank, CONFIGS["jsonl"], out=tmp_path / "a", run_dir=run, backbone=tiny)
    other = make_source_bank(tmp_path / "other", tiny, seed=1)  # another P*
    with pytest.raises(AdaptError, match="was adapted from the bank .* \\(another P\\*\\)"):
        adapt_bank(args, other, CONFIGS["jsonl"], out=tmp_path / "b", run_dir=run, backbone=tiny)
    changed = load_config("smoke", [*OVERRIDES, "adapt.modes=[full]"])
    with pytest.raises(ValueError, match="adapt.modes"):  # another config in the same run
        adapt_bank(changed, source_bank, CONFIGS["jsonl"], out=tmp_path / "a", run_dir=run)


def test_the_builtin_bank_is_refused_on_the_tiny_backbone(tiny, tmp_path):
    args = load_config("smoke", OVERRIDES)
    with pytest.raises(
        BankError,
        match="was trained on backbone smollm2-135m .* but the loaded backbone is tiny-llama",
    ):
        adapt_bank(
            args,
            "builtin",
            CONFIGS["jsonl"],
            out=tmp_path / "b",
            run_dir=tmp_path / "r",
            backbone=tiny,
        )
    assert not (tmp_path / "b").exists()
