"""Parity with PEFT 0.21: the multitask prompt equals MultitaskPromptEmbedding's output, and a
soft prompt injected by clinprompt gives PROMPT_TUNING's logits for the same prompt weights."""

from __future__ import annotations

import copy

import torch
from peft import MultitaskPromptTuningConfig, PromptTuningConfig, TaskType, get_peft_model
from peft.tuners.multitask_prompt_tuning.model import MultitaskPromptEmbedding

from clinprompt.data.collate import pad_batch
from clinprompt.prompts import MultitaskPrompt, prompted_logits


def test_multitask_prompt_matches_peft(tiny):
    p, d, k, r = 6, 64, 3, 2
    cfg = MultitaskPromptTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=p,
        token_dim=d,
        num_tasks=k,
        num_ranks=r,
        num_transformer_submodules=1,
        num_attention_heads=4,
        num_layers=2,
    )
    peft_emb = MultitaskPromptEmbedding(cfg, tiny.model.get_input_embeddings())
    with torch.no_grad():
        peft_emb.embedding.weight.normal_()
        peft_emb.prefix_task_cols.normal_()
        peft_emb.prefix_task_rows.normal_()
    ours = MultitaskPrompt(
        peft_emb.embedding.weight.detach(),
        peft_emb.prefix_task_cols.detach(),
        peft_emb.prefix_task_rows.detach(),
    )
    task_ids = torch.tensor([2, 0, 1, 2])
    indices = torch.arange(p).unsqueeze(0).expand(4, -1)
    with torch.no_grad():
        expected = peft_emb(indices, task_ids)
        got = ours(4, task_ids)
    torch.testing.assert_close(got, expected)


def test_injected_prompt_matches_peft_prompt_tuning(tiny, encode_texts):
    p = 5
    base = copy.deepcopy(tiny.model)
    peft_model = get_peft_model(
        base, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=p)
    )
    weight = torch.randn(p, 64) * 0.2
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(weight)
    items = encode_texts(["Warfarin interacts with aspirin.", "Hb 9.8 g/dL."])
    batch = pad_batch(items, tiny.tokenizer.pad_token_id, "right")
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits
        got = prompted_logits(
            tiny.model,
            weight.unsqueeze(0).expand(2, -1, -1),
            batch["input_ids"],
            batch["attention_mask"],
        )
    # Compare at attended positions (PEFT gives padded positions other position ids).
    mask = torch.cat([torch.ones(2, p, dtype=torch.long), batch["attention_mask"]], dim=1).bool()
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-5, rtol=1e-4)
