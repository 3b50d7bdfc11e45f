"""Backbone loading: built-ins, errors, freezing, fingerprints, the real SmolLM2."""

from __future__ import annotations

import json

import pytest
import torch

from clinprompt.backbone import (
    BackboneError,
    fingerprint,
    load_backbone,
    load_backbone_config,
    resolve_device,
    tiny_backbone,
)


def test_tiny_backbone_is_frozen_deterministic(tiny):
    assert all(not p.requires_grad for p in tiny.model.parameters())
    assert not tiny.model.training
    assert tiny.tokenizer.pad_token_id is not None
    again = tiny_backbone(seed=0, device="cpu")
    assert again.fingerprint == tiny.fingerprint
    other = tiny_backbone(seed=1, device="cpu")
    assert not other.fingerprint.matches(tiny.fingerprint)


def test_fingerprint_is_dtype_independent(tiny):
    fp32 = fingerprint(tiny.model, "x")
    bf16 = fingerprint(tiny.model.to(torch.bfloat16), "x")
    tiny.model.to(torch.float32)
    assert fp32.embedding_sha256 == bf16.embedding_sha256


def test_unknown_backbone_lists_builtins_and_forms():
    with pytest.raises(BackboneError) as err:
        load_backbone("smollm-9000")
    msg = str(err.value)
    assert "unknown backbone 'smollm-9000'" in msg
    assert "smollm2-135m" in msg and "tiny-llama" in msg and "config.json" in msg


def test_directory_without_config(tmp_path):
    with pytest.raises(BackboneError, match="has no config.json"):
        load_backbone(str(tmp_path))


def test_directory_without_causal_lm_head(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "bert",
                "architectures": ["BertModel"],
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "vocab_size": 100,
            }
        )
    )
    with pytest.raises(BackboneError, match=r"no causal-LM head"):
        load_backbone(str(tmp_path))


def test_local_hf_directory_round_trip(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_backbone(str(tmp_path), device="cpu")
    assert loaded.fingerprint.matches(tiny.fingerprint)
    assert all(not p.requires_grad for p in loaded.model.parameters())


def test_device_resolution():
    dev, dtype = resolve_device("cpu")
    assert dev.type == "cpu" and dtype == torch.float32
    assert resolve_device("cpu", "bf16")[1] == torch.bfloat16
    with pytest.raises(BackboneError, match="dtype 'fp64'"):
        resolve_device("cpu", "fp64")
    if not torch.cuda.is_available():
        with pytest.raises(BackboneError, match="CUDA is not available"):
            resolve_device("cuda")


def test_config_only_from_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 256,
                "vocab_size": 1000,
            }
        )
    )
    assert load_backbone_config(str(path)).hidden_size == 128
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(BackboneError, match="'model_type' is missing"):
        load_backbone_config(str(bad))


@pytest.mark.backbone
def test_real_backbone_answers_sensibly(smollm2):
    """SmolLM2-135M-Instruct, dequantized from the GGUF: a simple instruction gets a sensible answer."""
    tok = smollm2.tokenizer
    assert smollm2.fingerprint.hidden_size == 576 and smollm2.fingerprint.num_layers == 30
    assert all(not p.requires_grad for p in smollm2.model.parameters())
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
    out = smollm2.model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False
    )
    answer = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.backbone
def test_real_backbone_cached_load_is_identical(smollm2):
    again = load_backbone("smollm2-135m", device="cpu")  # auto: whatever this CPU computes best in
    assert again.fingerprint == smollm2.fingerprint  # the fingerprint does not depend on the dtype
    assert again.dtype_choice is not None and again.dtype_choice.requested == "auto"
    assert again.dtype == again.dtype_choice.dtype
    assert smollm2.dtype == torch.float32 and smollm2.dtype_choice.reason == "forced"
