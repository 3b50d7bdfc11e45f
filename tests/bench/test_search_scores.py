"""bench/search_scores.py's artifacts: each search candidate as `clinprompt evaluate` reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file


def _candidate(run: Path, method: str, weights: dict[str, torch.Tensor]) -> Path:
    cand = run / "lr_search" / method / "nli4ct" / "x1"
    cand.mkdir(parents=True)
    save_file(weights, cand / "best.safetensors")
    return cand


def test_pt_candidate_is_its_prompt_file(tmp_path):
    from search_scores import candidate_artifact

    cand = _candidate(tmp_path, "pt", {"prompt.weight": torch.ones(2, 3)})
    assert candidate_artifact("pt", tmp_path, cand, tmp_path / "out") == cand / "best.safetensors"


def test_mpt_candidate_is_the_shared_prompt_times_the_rank_one_factors(tmp_path):
    from search_scores import candidate_artifact

    shared = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    cols, rows = torch.tensor([[[2.0], [3.0]]]), torch.tensor([[[1.0, 0.5, -1.0]]])
    cand = _candidate(
        tmp_path, "mpt", {"prompt.shared": shared, "prompt.cols": cols, "prompt.rows": rows}
    )
    path = candidate_artifact("mpt", tmp_path, cand, tmp_path / "out")
    expected = shared * (torch.tensor([[2.0], [3.0]]) @ torch.tensor([[1.0, 0.5, -1.0]]))
    assert torch.equal(load_file(path)["prompt"], expected)


def test_lora_candidate_becomes_a_peft_adapter_like_the_runs_own(tmp_path):
    from search_scores import candidate_artifact

    key = "model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
    peft_key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    full = tmp_path / "baselines" / "lora" / "nli4ct" / "full" / "adapter"
    full.mkdir(parents=True)
    save_file({peft_key: torch.zeros(2, 2)}, full / "adapter_model.safetensors")
    for name in ("adapter_config.json", "clinprompt_task.json"):
        (full / name).write_text(json.dumps({"name": name}))
    cand = _candidate(tmp_path, "lora", {key: torch.full((2, 2), 7.0)})
    adapter = candidate_artifact("lora", tmp_path, cand, tmp_path / "out")
    assert torch.equal(
        load_file(adapter / "adapter_model.safetensors")[peft_key], torch.full((2, 2), 7.0)
    )
    assert json.loads((adapter / "adapter_config.json").read_text()) == {
        "name": "adapter_config.json"
    }
    save_file({key.replace("q_proj", "k_proj"): torch.zeros(2, 2)}, cand / "best.safetensors")
    with pytest.raises(SystemExit, match="do not match"):
        candidate_artifact("lora", tmp_path, cand, tmp_path / "out2")
