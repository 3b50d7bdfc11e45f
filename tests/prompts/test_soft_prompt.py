"""Soft-prompt core: shapes, the multitask decomposition, injection, PEFT parity."""

from __future__ import annotations

import pytest
import torch

from clinprompt.data.collate import pad_batch
from clinprompt.prompts import (
    IGNORE_INDEX,
    MultitaskPrompt,
    PromptError,
    SoftPrompt,
    inject_prompt,
    prompted_logits,
    target_outputs,
)


def test_soft_prompt_inits(tiny):
    emb = tiny.model.get_input_embeddings().weight
    for method in ("random", "vocab"):
        sp = SoftPrompt.create(7, emb, method=method, seed=1)
        assert sp.weight.shape == (7, 64)
        assert torch.equal(sp.weight, SoftPrompt.create(7, emb, method=method, seed=1).weight)
    ids = tiny.tokenizer("Extract drugs", add_special_tokens=False)["input_ids"]
    sp = SoftPrompt.create(5, emb, method="text", text_ids=ids)
    assert torch.equal(sp.weight[0], emb[ids[0]])
    assert torch.equal(sp.weight[len(ids)], emb[ids[0]])  # repeated to fill P
    with pytest.raises(PromptError, match="unknown prompt initialisation"):
        SoftPrompt.create(5, emb, method="bogus")


def test_multitask_prompt_is_shared_times_rank_one():
    torch.manual_seed(3)
    shared = torch.randn(4, 6)
    mp = MultitaskPrompt.create(shared, num_tasks=3, rank=1, init="normal", seed=2)
    out = mp(3, torch.tensor([2, 0, 2]))
    for b, k in enumerate([2, 0, 2]):
        expected = shared * torch.outer(mp.cols[k, :, 0], mp.rows[k, 0, :])
        torch.testing.assert_close(out[b], expected)
        torch.testing.assert_close(mp.task_prompt(k), expected)
    ones = MultitaskPrompt.create(shared, num_tasks=2, rank=3, init="ones")
    torch.testing.assert_close(ones.task_prompt(1), shared)


def test_multitask_prompt_errors():
    mp = MultitaskPrompt.create(torch.randn(4, 6), num_tasks=2)
    with pytest.raises(PromptError, match=r"task ids \[2\] are out of range.*K=2"):
        mp(1, torch.tensor([2]))
    with pytest.raises(PromptError, match="task_ids are required"):
        mp(1, None)
    with pytest.raises(PromptError, match=r"V must be \(K=2, R=1, D=6\)"):
        MultitaskPrompt(torch.randn(4, 6), torch.ones(2, 4, 1), torch.ones(2, 1, 5))


def test_trainable_subsets():
    mp = MultitaskPrompt.create(torch.randn(4, 6), num_tasks=2).trainable(
        shared=False, cols=True, rows=False
    )
    assert [p.requires_grad for p in (mp.shared, mp.cols, mp.rows)] == [False, True, False]


def test_prompt_dim_mismatch_is_refused(tiny):
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(PromptError, match="D=32 but the backbone's hidden size is 64"):
        inject_prompt(tiny.model, torch.randn(1, 4, 32), ids)


def test_inject_extends_mask_and_labels(tiny):
    ids = torch.tensor([[5, 6, 7], [8, 9, 2]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    labels = torch.tensor([[-100, 6, 7], [-100, 9, -100]])
    x = inject_prompt(tiny.model, torch.zeros(2, 4, 64), ids, mask, labels)
    assert x.inputs_embeds.shape == (2, 7, 64)
    assert x.attention_mask.tolist() == [[1] * 7, [1] * 6 + [0]]
    assert (x.labels[:, :4] == IGNORE_INDEX).all()
    assert x.position_ids[0].tolist() == list(range(7))


def test_left_and_right_padding_agree(tiny, encode_texts):
    """Logits of the real tokens do not depend on the padding side."""
    items = encode_texts(["Started metformin for diabetes.", "No acute distress today, afebrile."])
    prompt = torch.randn(2, 5, 64) * 0.1
    right = pad_batch(items, tiny.tokenizer.pad_token_id, "right")
    left = pad_batch(items, tiny.tokenizer.pad_token_id, "left")
    with torch.no_grad():
        lr = prompted_logits(tiny.model, prompt, right["input_ids"], right["attention_mask"])
        ll = prompted_logits(tiny.model, prompt, left["input_ids"], left["attention_mask"])
    width = right["input_ids"].shape[1]
    for b, item in enumerate(items):
        n = len(item)
        real_r = lr[b, 5 : 5 + n]
        real_l = ll[b, 5 + width - n :]
        torch.testing.assert_close(real_r, real_l, atol=1e-5, rtol=1e-4)


def test_mixed_task_batch_equals_per_task_forward(tiny, encode_texts):
    items = encode_texts(["Aspirin 81 mg daily.", "Chest pain radiating to the left arm."])
    mp = MultitaskPrompt.create(torch.randn(3, 64) * 0.1, num_tasks=2, init="normal", seed=4)
    batch = pad_batch(items, tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        mixed = prompted_logits(
            tiny.model, mp(2, torch.tensor([1, 0])), batch["input_ids"], batch["attention_mask"]
        )
        for b, k in enumerate([1, 0]):
            single = pad_batch([items[b]], tiny.tokenizer.pad_token_id)
            alone = prompted_logits(
                tiny.model, mp.task_prompt(k)[None], single["input_ids"], single["attention_mask"]
            )
            n = alone.shape[1]
            torch.testing.assert_close(mixed[b, :n], alone[0], atol=1e-5, rtol=1e-4)


def test_target_outputs_match_full_logits_loss(tiny, encode_texts):
    """Loss from logits at target positions only == HF's loss from the full logits."""
    items = encode_texts(["Patient denies fever.", "Metformin 500 mg twice daily with meals."])
    batch = pad_batch(items, tiny.tokenizer.pad_token_id)
    prompt = torch.randn(2, 4, 64) * 0.1
    out = target_outputs(
        tiny.model, prompt, batch["input_ids"], batch["attention_mask"], batch["labels"]
    )
    x = inject_prompt(
        tiny.model, prompt, batch["input_ids"], batch["attention_mask"], batch["labels"]
    )
    full = tiny.model(
        inputs_embeds=x.inputs_embeds,
        attention_mask=x.attention_mask,
        position_ids=x.position_ids,
        labels=x.labels,
    )
    torch.testing.assert_close(out.loss, full.loss, atol=1e-5, rtol=1e-5)
    assert out.num_tokens == sum(len(i) - 1 for i in items)
    assert out.logits.shape == (out.num_tokens, tiny.model.config.vocab_size)


def test_gradients_reach_prompt_only(tiny, encode_texts):
    items = encode_texts(["Lisinopril for hypertension."])
    batch = pad_batch(items, tiny.tokenizer.pad_token_id)
    sp = SoftPrompt.create(4, tiny.model.get_input_embeddings().weight)
    out = target_outputs(
        tiny.model, sp(1), batch["input_ids"], batch["attention_mask"], batch["labels"]
    )
    out.loss.backward()
    assert sp.weight.grad is not None and sp.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.model.parameters())
