"""Parameter accounting from a config alone; the per-target MPT share stays under 0.05%."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinprompt.backbone import load_backbone_config
from clinprompt.params import (
    DEFAULT_PROMPT_TOKENS,
    lora_parameter_count,
    meta_model,
    parameter_table,
    prompt_parameter_count,
)

LLAMA31_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
}


def _rows(config, **kw):
    rows, info = parameter_table(config, **kw)
    return {
        r.method.split(" (")[0] if r.method.startswith("prompt") else r.method: r for r in rows
    }, info


def test_llama31_8b_from_config(tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA31_8B))
    rows, info = parameter_table(load_backbone_config(str(path)))
    by = {r.method: r for r in rows}
    assert info["backbone_parameters"] == 8_030_261_248  # LLaMA 3.1 8B
    assert info["prompt_tokens"] == DEFAULT_PROMPT_TOKENS == 100
    assert by["prompt tuning (per task)"].trainable == 100 * 4096
    target = by["MPT per target (P* + factors)"]
    assert target.trainable == 100 * 4096 + 100 + 4096
    assert target.percent < 0.05
    # LoRA r=8 on q (4096→4096) and v (4096→1024) in 32 layers
    assert by["LoRA r=8 (q_proj, v_proj)"].trainable == 32 * 8 * ((4096 + 4096) + (4096 + 1024))


def test_packaged_paper_backbone_configs():
    rows, info = parameter_table(load_backbone_config("llama-3.1-8b"))
    assert info["backbone_parameters"] == 8_030_261_248
    rows, info = parameter_table(load_backbone_config("gpt-oss-20b"))
    assert 20.8e9 < info["backbone_parameters"] < 21.0e9
    assert {r.method: r for r in rows}["MPT per target (P* + factors)"].percent < 0.05


def test_smollm2_share_under_005_percent():
    # SmolLM2-135M's config, answered without weights (same numbers as the converted model).
    config = load_backbone_config("tiny-llama").__class__(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        tie_word_embeddings=True,
    )
    rows, info = parameter_table(config)
    by = {r.method: r for r in rows}
    assert info["backbone_parameters"] == 134_515_008
    assert by["MPT per target (P* + factors)"].percent < 0.05
    assert by["MPT per target (factors only)"].trainable == 100 + 576


def test_prompt_parameter_count_per_kind():
    # P=100, D=576, R=2: a soft prompt, factors on the shared P*, factors with their own P*.
    assert prompt_parameter_count("prompt", 100, 576) == 100 * 576
    assert prompt_parameter_count("factors", 100, 576, 2) == 100 * 2 + 2 * 576
    assert prompt_parameter_count("factors", 100, 576, 2, own_shared=True) == (
        100 * 2 + 2 * 576 + 100 * 576
    )
    with pytest.raises(ValueError, match="expected prompt or factors"):
        prompt_parameter_count("lora", 100, 576)


def test_lora_count_from_a_meta_model():
    model = meta_model(load_backbone_config("tiny-llama"))
    assert next(model.parameters()).device.type == "meta"
    with pytest.raises(ValueError, match="no linear layers named"):
        lora_parameter_count(model, 8, ("nope",))
    per_layer = [
        m.in_features + m.out_features
        for name, m in model.named_modules()
        if name.endswith(("q_proj", "v_proj"))
    ]
    assert lora_parameter_count(model, 4) == 4 * sum(per_layer) > 0
