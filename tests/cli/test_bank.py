"""``bank_summary`` (``clinprompt bank show``): counts come from params.py and agree with the bank."""

from __future__ import annotations

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
