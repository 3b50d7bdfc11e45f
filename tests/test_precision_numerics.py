"""bf16 against fp32 on the tiny model: the same numbers within stated tolerances, fp32 masters.

The tiny model (``tiny_backbone``) is drawn in fp32 and cast, so ``dtype="bf16"`` holds the same
weights rounded to bf16 (8 significant bits). These checks are cheap on any CPU, with or without
bf16 units. Each test's docstring states its tolerance and the figure measured when it was set
(torch 2.13 CPU); the tolerances leave 5-10x room over those figures, not more, so a change that
makes bf16 drift (an fp32 loss computed in bf16, a prompt that stays bf16) fails them.
"""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch

from clinprompt.backbone import tiny_backbone
from clinprompt.data.collate import Encoded, pad_batch
from clinprompt.decoding import PromptKVCache, encode_options, greedy_generate, option_logprobs
from clinprompt.prompts import IGNORE_INDEX, SoftPrompt, target_outputs
from clinprompt.train import PromptObjective, accumulate_gradients, amp_dtype, train
from clinprompt.train.step import evaluate_loss

P = 8


@pytest.fixture(scope="module")
def tiny_bf16():
    return tiny_backbone(seed=0, device="cpu", dtype="bf16")


@pytest.fixture(scope="module")
def prompt(tiny) -> torch.Tensor:
    """(P, D) fp32: a vocabulary-initialised prompt, the same for both dtypes."""
    return SoftPrompt.create(P, tiny.model.get_input_embeddings().weight, "vocab", seed=0).weight


def _examples(n: int, seed: int = 0) -> list[Encoded]:
    """Random inputs of 6-30 tokens, then 2-8 target tokens."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        inp = [rng.randrange(1000, 20000) for _ in range(rng.randint(6, 30))]
        tgt = [rng.randrange(1000, 20000) for _ in range(rng.randint(2, 8))]
        out.append(Encoded(inp + tgt, [IGNORE_INDEX] * len(inp) + tgt, len(inp), 0))
    return out


def _targets(backbone, prompt: torch.Tensor, examples: list[Encoded]):
    batch = pad_batch(examples, backbone.tokenizer.pad_token_id)
    prompts = prompt.detach().unsqueeze(0).expand(len(examples), -1, -1)
    with torch.no_grad():
        return target_outputs(
            backbone.model,
            prompts,
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
        )


def test_tiny_bf16_is_the_same_model_rounded(tiny, tiny_bf16):
    assert tiny_bf16.dtype == torch.bfloat16 and tiny.dtype == torch.float32
    assert tiny_bf16.dtype_choice.to_dict() == {
        "dtype": "bf16",
        "requested": "bf16",
        "reason": "forced",
    }
    assert tiny_bf16.fingerprint == tiny.fingerprint
    w32 = tiny.model.model.layers[0].mlp.up_proj.weight
    w16 = tiny_bf16.model.model.layers[0].mlp.up_proj.weight
    assert torch.equal(w32.to(torch.bfloat16), w16)


def test_target_loss_agrees(tiny, tiny_bf16, prompt):
    """Target-token cross-entropy over 16 examples: |loss_bf16 - loss_fp32| <= 0.5% of loss_fp32
    (measured: 1e-5 relative). The loss itself is computed in fp32 on both."""
    examples = _examples(16)
    f32, b16 = _targets(tiny, prompt, examples), _targets(tiny_bf16, prompt, examples)
    assert f32.loss.dtype == b16.loss.dtype == torch.float32
    assert b16.logits.dtype == torch.float32  # the LM head's output is upcast before the loss
    assert f32.num_tokens == b16.num_tokens > 50
    assert abs(b16.loss.item() - f32.loss.item()) <= 5e-3 * f32.loss.item()


def test_logits_agree(tiny, tiny_bf16, prompt):
    """Logits at every target position: max |Δ| <= 2% of the largest |logit| (measured: 0.36%),
    and the argmax token agrees at >= 95% of the positions (measured: 100%)."""
    examples = _examples(16)
    f32, b16 = _targets(tiny, prompt, examples), _targets(tiny_bf16, prompt, examples)
    scale = f32.logits.abs().max().item()
    assert (b16.logits - f32.logits).abs().max().item() <= 0.02 * scale
    agree = (b16.logits.argmax(-1) == f32.logits.argmax(-1)).float().mean().item()
    assert agree >= 0.95


def test_greedy_tokens_agree(tiny, tiny_bf16, prompt):
    """Greedy generation of 16 rows x 8 tokens through the decoding engine (prompt KV cache):
    >= 90% of the tokens equal fp32's position by position (measured: 100%), and >= 14 of the
    16 rows are identical. The bf16 run caches the prompt's keys/values in bf16."""
    examples = _examples(16, seed=1)
    ids = [x.input_ids[: x.prompt_length] for x in examples]
    keys = ["t"] * len(ids)
    outs = []
    for bb in (tiny, tiny_bf16):
        cache = PromptKVCache(bb.model)
        prompts = prompt.detach().to(bb.dtype).unsqueeze(0).expand(len(ids), -1, -1)
        outs.append(greedy_generate(bb.model, prompts, ids, 8, -1, 0, cache, keys))
        assert cache.keys() == ["t"]  # one task: its prompt's keys/values, computed once
        assert cache.get("t", prompts[0])[0][0].dtype == bb.dtype
    f32, b16 = outs
    total = sum(len(r) for r in f32)
    assert total == 16 * 8
    same = sum(
        a == b for r32, r16 in zip(f32, b16, strict=True) for a, b in zip(r32, r16, strict=True)
    )
    assert same >= 0.9 * total
    assert sum(r32 == r16 for r32, r16 in zip(f32, b16, strict=True)) >= 14


def test_option_scores_choose_alike(tiny, tiny_bf16, prompt):
    """Option scoring of 24 inputs x 6 candidates: every score (a sum of log-probabilities, in
    fp32 on both) within 0.05 nats of fp32's (measured: 0.0026); the chosen option agrees on
    >= 90% of the inputs (measured: 100%) and on every input whose fp32 margin between the best
    two options exceeds 0.1 nats, twice that tolerance."""
    rng = random.Random(2)
    ids = [[rng.randrange(1000, 20000) for _ in range(rng.randint(6, 30))] for _ in range(24)]
    opts = encode_options(
        tiny.tokenizer, ["entailment", "contradiction", "neutral", "yes", "no", "maybe"]
    )
    scores = []
    for bb in (tiny, tiny_bf16):
        prompts = prompt.detach().to(bb.dtype).unsqueeze(0).expand(len(ids), -1, -1)
        scores.append(torch.tensor(option_logprobs(bb.model, prompts, ids, [opts] * len(ids))))
    f32, b16 = scores
    assert (b16 - f32).abs().max().item() <= 0.05
    choose32, choose16 = f32.argmax(1), b16.argmax(1)
    assert (choose32 == choose16).float().mean().item() >= 0.9
    top2 = f32.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.1
    assert clear.sum() >= 12 and torch.equal(choose32[clear], choose16[clear])


def test_training_step_updates_the_fp32_prompt(tiny, tiny_bf16, prompt):
    """One accumulate → AdamW step on the bf16 backbone: the prompt parameter and its gradient
    stay fp32 (the prompt is cast to bf16 at injection, the gradient flows back through the cast),
    the gradient's cosine with fp32's is >= 0.99 and its norm within 5% (measured: 0.99997 and
    0.8%), and the step moves the fp32 weights. No autocast on a CPU: the backbone's weights
    already are bf16."""
    assert amp_dtype(tiny_bf16.model) is None
    examples = _examples(8, seed=3)
    grads = {}
    for name, bb in (("fp32", tiny), ("bf16", tiny_bf16)):
        soft = SoftPrompt(prompt.detach().clone())
        objective = PromptObjective(bb.model, soft)
        stats = accumulate_gradients(objective, examples, list(range(8)), pad_id=0)
        assert soft.weight.dtype == soft.weight.grad.dtype == torch.float32
        assert stats.dtype == torch.float32 and torch.isfinite(stats).all()
        grads[name] = soft.weight.grad.clone()
        before = soft.weight.detach().clone()
        optimizer = torch.optim.AdamW(soft.parameters(), lr=0.1)
        optimizer.step()
        assert soft.weight.dtype == torch.float32 and not torch.equal(soft.weight, before)
        assert all(s.dtype == torch.float32 for s in optimizer.state[soft.weight].values())
    g32, g16 = grads["fp32"].flatten(), grads["bf16"].flatten()
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0).item() >= 0.99
    assert abs(g16.norm().item() - g32.norm().item()) <= 0.05 * g32.norm().item()


def test_dev_loss_agrees(tiny, tiny_bf16, prompt):
    """The loop's dev loss (token-weighted, over batches): within 0.5% (measured: 1e-5)."""
    examples = _examples(12, seed=4)
    losses = [
        evaluate_loss(
            PromptObjective(bb.model, SoftPrompt(prompt.detach().clone())), examples, 0, 4
        )
        for bb in (tiny, tiny_bf16)
    ]
    assert abs(losses[1] - losses[0]) <= 5e-3 * losses[0]


def test_lora_on_a_bf16_backbone_trains_fp32_adapter_weights(tiny_bf16):
    """PEFT keeps LoRA's A and B in fp32 on a bf16 base (``autocast_adapter_dtype``): the
    baseline trains fp32 weights with fp32 gradients and fp32 AdamW states."""
    from peft import LoraConfig, TaskType, get_peft_model

    model = copy.deepcopy(tiny_bf16.model)
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, target_modules=["q_proj", "v_proj"])
    peft_model = get_peft_model(model, config)
    objective = PromptObjective(peft_model.get_base_model(), None, train_model=True)
    params = objective.named_parameters()
    assert params and all(p.dtype == torch.float32 for p in params.values())
    base = peft_model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    assert base.dtype == torch.bfloat16 and not base.requires_grad
    stats = accumulate_gradients(objective, _examples(4, seed=5), [0, 1, 2, 3], pad_id=0)
    assert torch.isfinite(stats).all()
    grads = [p.grad for p in params.values() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_training_run_records_the_dtype(tiny_bf16, prompt, tmp_path):
    """A training run on the bf16 backbone writes the dtype and why into result.json; its saved
    weights are fp32."""
    from clinprompt.artifacts import load_tensors
    from clinprompt.config import TrainArgs

    soft = SoftPrompt(prompt.detach().clone())
    args = TrainArgs(steps=2, batch_size=4, eval_every=0, log_every=1, progress=False)
    result = train(
        PromptObjective(tiny_bf16.model, soft),
        _examples(8, seed=6),
        args,
        tmp_path / "run",
        pad_id=0,
        dev_set=_examples(4, seed=7),
    )
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["precision"] == result.precision == tiny_bf16.dtype_choice.to_dict()
    assert load_tensors(tmp_path / "run" / "final.safetensors")["prompt.weight"].dtype == (
        torch.float32
    )


def test_evaluation_records_the_dtype(tiny_bf16, tmp_path):
    """``evaluate`` on the bf16 backbone (option scoring) writes the dtype and why into
    metrics.json and config.json."""
    from clinprompt.recipes.evaluate import EvalArgs, evaluate

    gen = torch.Generator().manual_seed(0)
    path = tmp_path / "prompt.safetensors"
    from clinprompt.artifacts import save_tensors

    save_tensors(path, {"prompt": torch.randn(P, tiny_bf16.hidden_size, generator=gen) * 0.02})
    args = EvalArgs(
        dataset="syn_symptom_nli",
        artifact=str(path),
        limit=3,
        dtype="bf16",
        out=str(tmp_path / "e"),
    )
    result = evaluate(args, backbone=tiny_bf16)
    assert result.n == 3
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    config = json.loads((tmp_path / "e" / "config.json").read_text())
    assert metrics["precision"] == config["precision"] == tiny_bf16.dtype_choice.to_dict()
    assert config["dtype"] == "bf16"
