"""``bank_summary`` (``clinprompt bank show``): counts come from params.py and agree with the bank;
the built-in bank (``builtin``) is shown without a model and never written; ``bank package``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clinprompt.cli.bank import bank_summary
from clinprompt.params import lora_parameter_count, meta_model
from clinprompt.prompts.bank import PromptBank, TaskEntry


def test_summary_counts_match_the_stored_tensors(tmp_path, tiny):
    p, d, r = 4, tiny.hidden_size, 2
    bank = PromptBank.create(
        tmp_path / "bank", tiny.fingerprint, prompt_tokens=p, rank=r, shared=torch.randn(p, d)
    )
    bank.add_factors(TaskEntry("a", "qa", "factors"), torch.randn(p, r), torch.randn(r, d))
    bank.add_factors(
        TaskEntry("b", "qa", "factors"),
        torch.randn(p, r),
        torch.randn(r, d),
        shared=torch.randn(p, d),  # its own adapted P*
    )
    bank.add_prompt(TaskEntry("c", "qa", "prompt"), torch.randn(p, d))
    summary = bank_summary(bank, "tiny-llama", lora_r=4)
    for task in summary["tasks"]:
        stored = sum(t.numel() for t in bank.task_tensors(task["name"]).values())
        assert task["parameters"] == stored and task["bytes_fp32"] == 4 * stored
    assert [t["parameters"] for t in summary["tasks"]] == [
        p * r + r * d,
        p * r + r * d + p * d,
        p * d,
    ]
    assert summary["shared_parameters"] == p * d
    assert summary["lora_parameters"] == lora_parameter_count(meta_model(tiny.model.config), 4)
    assert summary["backbone_parameters"] == tiny.num_parameters() and not summary["note"]
    unknown = bank_summary(bank, "no-such-backbone")
    assert unknown["lora_parameters"] is None and "no LoRA comparison" in unknown["note"]


# ------------------------------------------------------------- the built-in bank, and packaging
BUILTIN = Path(__file__).resolve().parents[2] / "src" / "clinprompt" / "banks" / "smollm2-135m"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def no_model(monkeypatch):
    """Loading or converting any backbone fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    for where in ("load_backbone", "_convert_builtin", "tiny_backbone"):
        monkeypatch.setattr(f"clinprompt.backbone.{where}", refuse)


def test_bank_show_and_list_builtin_load_no_model(cli, no_model):
    shown = cli("bank", "show", "builtin", "--json")
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.output)
    assert summary["bank"] == str(BUILTIN) and summary["backbone"]["name"] == "smollm2-135m"
    assert summary["lora_parameters"] and summary["note"] == ""  # from the packaged config
    provenance = summary["provenance"]
    sources = provenance["data"]["sources"]
    assert [t["name"] for t in summary["tasks"]] == sources and len(sources) == 18
    assert all(t["kind"] == "factors" for t in summary["tasks"])
    assert provenance["backbone"] == summary["backbone"]
    for key in ("built", "command", "clinprompt", "budgets"):
        assert provenance[key], key
    assert set(provenance["data"]["examples"]) == set(sources)
    table = cli("bank", "show", "builtin")
    assert table.exit_code == 0 and "provenance: 18 sources of suite open-clinical" in table.output
    listed = cli("bank", "list", "builtin")
    assert listed.exit_code == 0 and f"18 task(s) in {BUILTIN}" in listed.output


def test_writing_into_the_builtin_bank_is_refused(cli, tmp_path):
    before = _files(BUILTIN)
    removed = cli("bank", "remove", "builtin", "bc5cdr_ner")
    assert removed.exit_code == 1 and "refusing to remove a task from the built-in bank" in (
        removed.output
    )
    upgraded = cli("bank", "upgrade", "builtin")
    assert upgraded.exit_code == 1 and "refusing to upgrade the built-in bank" in upgraded.output
    added = cli("bank", "add", str(BUILTIN), str(BUILTIN), "--task", "bc5cdr_ner", "--name", "x")
    assert added.exit_code == 1 and "refusing to add a task to the built-in bank" in added.output
    assert _files(BUILTIN) == before


def test_the_builtin_bank_ships_in_the_package_data():
    """Every file of the shipped bank matches a package-data glob of pyproject.toml, so a wheel
    (``pip install .``) carries it."""
    import fnmatch
    import tomllib

    root = BUILTIN.parents[1]  # src/clinprompt
    pyproject = tomllib.loads((root.parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["clinprompt"]
    files = [p.relative_to(root).as_posix() for p in BUILTIN.rglob("*") if p.is_file()]
    assert {Path(f).name for f in files} >= {"bank.json", "shared.safetensors", "provenance.json"}
    assert [f for f in files if not any(fnmatch.fnmatchcase(f, g) for g in globs)] == []


def test_package_a_bank(cli, tiny, tmp_path, monkeypatch):
    import sys

    from tests.recipes.conftest import SOURCES, make_source_bank

    source = make_source_bank(tmp_path / "run" / "distill" / "bank", tiny)
    serving = PromptBank.load(source)
    serving.add_prompt(
        TaskEntry("a_target", "qa", "prompt", meta={"setting": "full"}), torch.randn(4, 64)
    )
    out = tmp_path / "packaged"
    monkeypatch.setattr(sys, "argv", ["clinprompt", "bank", "package", "SRC", "--out", "DIR"])
    result = cli(
        "bank",
        "package",
        str(source),
        "--out",
        str(out),
        "--training-command",
        "clinprompt run smoke",
    )
    assert result.exit_code == 0, result.output
    assert f"packaged 2 source(s) and P* into {out}" in result.output
    packaged = PromptBank.load(out, expect=tiny.fingerprint)
    assert packaged.names() == list(SOURCES)  # the source factors only
    assert torch.equal(packaged.shared(), serving.shared())
    for name in SOURCES:
        assert torch.equal(packaged.task_prompt(name), serving.task_prompt(name))
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["training_command"] == "clinprompt run smoke"
    assert provenance["command"] == "clinprompt bank package SRC --out DIR"  # as typed
    assert provenance["backbone"] == tiny.fingerprint.to_dict()
    assert provenance["data"]["sources"] == list(SOURCES)
    assert provenance["clinprompt"]["version"] and "built" in provenance
    assert "clinprompt bank package RUN/distill/bank --out DIR" in (out / "README.md").read_text()
    assert json.loads((out / "backbone_config.json").read_text())["hidden_size"] == 64
    neither = cli("bank", "package", str(source))
    assert neither.exit_code == 2 and "exactly one of --builtin and --out" in neither.output


@pytest.mark.backbone
def test_packaging_the_builtin_bank_refuses_another_backbone(cli, tiny, tmp_path):
    from tests.recipes.conftest import make_source_bank

    before = _files(BUILTIN)
    source = make_source_bank(tmp_path / "bank", tiny)
    result = cli("bank", "package", str(source), "--builtin")
    assert result.exit_code == 1
    assert "was trained on backbone tiny-llama" in result.output
    assert "but the loaded backbone is smollm2-135m" in result.output
    assert _files(BUILTIN) == before
