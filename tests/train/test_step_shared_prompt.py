"""Each distinct prompt run once per batch: the same loss, logits and gradients as injecting it
into every row (up to float summation order), for one prompt, mixed tasks and a bf16 backbone."""

from __future__ import annotations

import random

import pytest
import torch

from clinprompt.backbone import tiny_backbone
from clinprompt.data.collate import Encoded, pad_batch
from clinprompt.prompts import IGNORE_INDEX, MultitaskPrompt, SoftPrompt, target_outputs
from clinprompt.train import PromptObjective
from clinprompt.train.shared_prompt import can_share, shared_target_outputs

P = 6


def _batch(n: int = 6, tasks: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded rows of 5-25 input tokens then 2-7 target tokens, task ids i % tasks."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        inp = [rng.randrange(1000, 20000) for _ in range(rng.randint(5, 25))]
        tgt = [rng.randrange(1000, 20000) for _ in range(rng.randint(2, 7))]
        items.append(Encoded(inp + tgt, [IGNORE_INDEX] * len(inp) + tgt, len(inp), i % tasks))
    return pad_batch(items, 0)


def _prompt(tiny, kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    soft = SoftPrompt.create(P, tiny.model.get_input_embeddings().weight, "vocab")
    if kind == "soft":
        return soft
    return MultitaskPrompt.create(soft.weight.detach(), 3, rank=2, init="normal")


def _run(model, prompt, batch, share: bool):
    objective = PromptObjective(model, prompt, share_prompt=share)
    prompt.zero_grad(set_to_none=True)
    out = objective.loss(batch)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in prompt.named_parameters()}


@pytest.mark.parametrize("kind", ["soft", "multi"])
def test_shared_prompt_gives_the_injected_loss_and_gradients(tiny, kind):
    """fp32: loss within 1e-5 relative, every gradient within 1e-4 of its largest entry."""
    batch, prompt = _batch(), _prompt(tiny, kind)
    plain, g_plain = _run(tiny.model, prompt, batch, share=False)
    shared, g_shared = _run(tiny.model, prompt, batch, share=True)
    assert shared.num_tokens == plain.num_tokens > 0
    assert shared.loss.item() == pytest.approx(plain.loss.item(), rel=1e-5)
    for name, g in g_plain.items():
        assert (g_shared[name] - g).abs().max() <= 1e-4 * g.abs().max(), name


def test_shared_prompt_outputs_match_target_outputs_row_by_row(tiny):
    """Logits, hidden states, targets and example indices in the same order as target_outputs."""
    batch, prompt = _batch(tasks=1), _prompt(tiny, "soft")
    with torch.no_grad():
        prompts = prompt(batch["input_ids"].shape[0], batch["task_ids"])
        ref = target_outputs(
            tiny.model, prompts, batch["input_ids"], batch["attention_mask"], batch["labels"]
        )
        got = shared_target_outputs(
            tiny.model,
            prompt(1, None),
            torch.zeros(len(batch["task_ids"]), dtype=torch.long),
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
        )
    assert torch.equal(got.targets, ref.targets)
    assert torch.equal(got.example_index, ref.example_index)
    assert (got.logits - ref.logits).abs().max() <= 1e-4 * ref.logits.abs().max()
    assert (got.hidden - ref.hidden).abs().max() <= 1e-4 * ref.hidden.abs().max()


def test_a_first_token_target_falls_back_to_injection(tiny):
    """The last prompt position would predict a target in the first column: not shared, and
    the loss is then target_outputs' exactly."""
    batch, prompt = _batch(tasks=1), _prompt(tiny, "soft")
    batch["labels"][0, 0] = batch["input_ids"][0, 0]
    assert not can_share(batch["labels"])
    with torch.no_grad():
        out = PromptObjective(tiny.model, prompt).loss(batch)
        ref = target_outputs(
            tiny.model,
            prompt(len(batch["task_ids"]), None),
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
        )
    assert out.num_tokens == ref.num_tokens and torch.equal(out.loss, ref.loss)


def test_shared_prompt_on_a_bf16_backbone(tiny):
    """bf16: the shared path agrees with injection within bf16's tolerance (loss 0.5%), and the
    prompt's gradient is fp32."""
    bf16 = tiny_backbone(seed=0, device="cpu", dtype="bf16")
    batch, prompt = _batch(), _prompt(tiny, "multi")
    plain, g_plain = _run(bf16.model, prompt, batch, share=False)
    shared, g_shared = _run(bf16.model, prompt, batch, share=True)
    assert shared.loss.item() == pytest.approx(plain.loss.item(), rel=5e-3)
    for name, g in g_shared.items():
        assert g.dtype == torch.float32
        cos = torch.nn.functional.cosine_similarity(g.flatten(), g_plain[name].flatten(), dim=0)
        assert cos >= 0.99, name
