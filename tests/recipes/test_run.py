"""The smoke profile end to end: teachers → distill → adapt → baselines; re-runs skip."""

from __future__ import annotations

import pytest

from clinprompt.artifacts import read_json
from clinprompt.config import ConfigError, load_config
from clinprompt.recipes.run import run_experiment


@pytest.fixture(scope="module")
def smoke_run(tiny, tmp_path_factory):
    args = load_config("smoke", [f"output_dir={tmp_path_factory.mktemp('smoke')}"])
    return args, run_experiment(args, backbone=tiny)


def test_smoke_profile_end_to_end(smoke_run):
    args, result = smoke_run
    assert result.stages == {"teachers": "ran", "distill": "ran", "adapt": "ran", "baseline": "ran"}
    targets = [
        "syn_vitals_ner",
        "syn_dose_re",
        "syn_drug_class_qa",
        "syn_symptom_nli",
        "syn_plan_sum",
    ]
    for target in targets:
        for setting in ("full", "k8", "k0"):
            assert result.find("mpt", target, setting).task == (
                target if setting == "full" else f"{target}.{setting}"
            )
            assert result.find("pt", target, setting).path == str(result.pt_bank)
        for setting in ("full", "k8"):
            assert (
                result.run_dir
                / "baselines"
                / "lora"
                / target
                / setting
                / "adapter"
                / "adapter_model.safetensors"
            ).exists()
    assert len(result.artifacts) == 5 * (3 + 3 + 2)
    for path in (result.teachers_bank, result.distilled_bank, result.bank, result.pt_bank):
        assert (path / "bank.json").exists()
    index = read_json(result.run_dir / "run.json")
    assert index["bank"] == str(result.bank) and len(index["artifacts"]) == 40
    assert read_json(result.config) == read_json(result.run_dir / "teachers" / "config.json")


def test_rerun_skips_every_stage(tiny, smoke_run):
    args, first = smoke_run
    again = run_experiment(args, backbone=tiny)
    assert set(again.stages.values()) == {"skipped"} and again.artifacts == first.artifacts


def test_a_changed_config_is_refused(tiny, smoke_run):
    args, _ = smoke_run
    changed = load_config(
        "smoke", [f"output_dir={args.output_dir}", "train.lr=0.1", "train.progress=true"]
    )
    with pytest.raises(ConfigError, match=r"train.lr: 0.3 in the run, 0.1 now"):
        run_experiment(changed, backbone=tiny)
