"""Baselines on the tiny model: PT prompts in a bank, LoRA adapters saved by PEFT; the backbone is left intact."""

from __future__ import annotations

import math

import pytest
import torch

from clinprompt.artifacts import load_tensors, read_json
from clinprompt.config import load_config
from clinprompt.prompts.bank import PromptBank
from clinprompt.recipes.baseline import train_baselines
from clinprompt.recipes.teachers import train_teachers

OVERRIDES = [
    "data.sources=[syn_med_ner,syn_ade_re]",
    "data.targets=[syn_vitals_ner]",
    "train.steps=2",
    "adapt.shots=[4]",
    "adapt.train={steps: 6}",
    "baseline.lora_lr=1e-2",
]


@pytest.fixture(scope="module")
def baselines(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("baselines")
    args = load_config("smoke", [f"output_dir={path}", *OVERRIDES])
    train_teachers(args, backbone=tiny)  # zero-shot PT transfers a teacher prompt
    ids = torch.tensor([[1, 200, 300, 400]])
    with torch.no_grad():
        before = tiny.model(ids).logits
    result = train_baselines(args, backbone=tiny)
    with torch.no_grad():
        after = tiny.model(ids).logits
    return args, result, before, after


def test_backbone_is_unchanged_after_lora(tiny, baselines):
    _, _, before, after = baselines
    assert torch.equal(before, after)
    assert not any("lora" in name for name, _ in tiny.model.named_parameters())
    assert not any(p.requires_grad for p in tiny.model.parameters())


def test_pt_prompts_in_a_bank(tiny, baselines):
    args, result, _, _ = baselines
    bank = PromptBank.load(args.run_dir / "baselines" / "pt" / "bank", expect=tiny.fingerprint)
    assert bank.names() == ["syn_vitals_ner", "syn_vitals_ner.k4", "syn_vitals_ner.k0"]
    assert all(
        bank.entry(n).kind == "prompt" and bank.entry(n).meta["method"] == "pt"
        for n in bank.names()
    )
    teachers = PromptBank.load(args.run_dir / "teachers" / "bank")
    mean = torch.stack([teachers.task_prompt(n) for n in teachers.names()]).mean(0)
    assert torch.equal(bank.task_prompt("syn_vitals_ner.k0"), mean)  # adapt.zero_shot=mean
    run = read_json(
        args.run_dir / "baselines" / "pt" / "runs" / "syn_vitals_ner" / "full" / "result.json"
    )
    assert all(math.isfinite(x) for x in run["losses"]) and run["losses"][-1] < run["losses"][0]


def test_lora_adapters_saved_by_peft(tiny, baselines):
    from peft import PeftModel

    args, result, before, _ = baselines
    refs = [(r.method, r.setting) for r in result.artifacts]
    assert refs == [("pt", "full"), ("lora", "full"), ("pt", "k4"), ("lora", "k4"), ("pt", "k0")]
    adapter = args.run_dir / "baselines" / "lora" / "syn_vitals_ner" / "full" / "adapter"
    config = read_json(adapter / "adapter_config.json")
    assert (
        config["peft_type"] == "LORA"
        and config["r"] == 8
        and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    )
    assert config["task_type"] == "CAUSAL_LM"
    weights = load_tensors(adapter / "adapter_model.safetensors")
    assert weights and all(torch.isfinite(t).all() for t in weights.values())
    assert any(
        "lora_B" in k and t.abs().sum() > 0 for k, t in weights.items()
    )  # B moved from its zero init
    sidecar = read_json(adapter / "clinprompt_task.json")
    assert sidecar["task_type"] == "ner" and sidecar["backbone"] == tiny.fingerprint.to_dict()
    run = read_json(
        args.run_dir / "baselines" / "lora" / "syn_vitals_ner" / "full" / "run" / "result.json"
    )
    assert all(math.isfinite(x) for x in run["losses"]) and run["losses"][-1] < run["losses"][0]
    model = PeftModel.from_pretrained(tiny.model, str(adapter))
    try:
        with torch.no_grad():
            assert not torch.equal(model(torch.tensor([[1, 200, 300, 400]])).logits, before)
    finally:
        model.unload()


def test_one_method_does_not_finish_the_stage(tiny, tmp_path):
    args = load_config(
        "smoke",
        [f"output_dir={tmp_path}", *OVERRIDES, "adapt.modes=[full]", "adapt.train={steps: 1}"],
    )
    result = train_baselines(args, methods=["lora"], backbone=tiny)
    assert [r.method for r in result.artifacts] == ["lora"]
    assert not (tmp_path / "baselines" / "DONE.json").exists()
    assert not (tmp_path / "baselines" / "pt").exists()
