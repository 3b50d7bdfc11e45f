"""Distillation losses against hand-computed values, and the distillation objective's switches:
terms, weights, and the hidden term's layers and positions."""

from __future__ import annotations

import math

import pytest
import torch

from clinprompt.prompts import MultitaskPrompt, SoftPrompt, target_outputs
from clinprompt.train import DistillObjective, TeacherCache, collate, hidden_mse, kl_full, kl_topk
from clinprompt.train.losses import layers_mse


def test_kl_full_hand_value():
    # Teacher p = (3/4, 1/4), student uniform q = (1/2, 1/2):
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812...
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    student = torch.zeros(1, 2)
    assert kl_full(student, teacher, temperature=1.0).item() == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-6
    )
    assert kl_full(student, teacher, temperature=1.0).item() == pytest.approx(0.130812, abs=1e-6)
    # At τ = 2 the teacher softens to p = (√3, 1) / (√3 + 1); the KL is scaled by τ² = 4.
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    expected = 4 * (p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5))
    assert kl_full(student, teacher, temperature=2.0).item() == pytest.approx(expected, abs=1e-6)
    assert kl_full(teacher, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_is_averaged_over_positions():
    teacher = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    student = torch.zeros(2, 2)
    assert kl_full(student, teacher).item() == pytest.approx(0.130812 / 2, abs=1e-6)


def test_kl_topk_hand_value_and_full_equivalence():
    student = torch.tensor([[0.0, math.log(2.0), math.log(3.0)]])  # q = (1, 2, 3) / 6
    teacher = torch.tensor([[5.0, 1.0, 1.0]])
    values, indices = teacher.topk(2, dim=-1)  # token 0 (5.0) and one of the 1.0s
    p0 = math.exp(5) / (math.exp(5) + math.exp(1))
    q = [1 / 6, 2 / 6, 3 / 6]
    j = int(indices[0, 1])
    expected = p0 * math.log(p0 / q[0]) + (1 - p0) * math.log((1 - p0) / q[j])
    assert kl_topk(student, values, indices, 1.0).item() == pytest.approx(expected, abs=1e-6)
    v, i = teacher.topk(3, dim=-1)
    assert kl_topk(student, v, i, 2.0).item() == pytest.approx(
        kl_full(student, teacher, 2.0).item(), abs=1e-6
    )


def test_hidden_mse_hand_value():
    s = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert hidden_mse(s, torch.zeros(2, 2)).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert hidden_mse(s, s).item() == 0.0
    with pytest.raises(ValueError, match="differ"):
        hidden_mse(s, torch.zeros(2, 3))


def _setup(tiny, make):
    emb = tiny.model.get_input_embeddings().weight
    teachers = torch.stack(
        [SoftPrompt.create(4, emb, "vocab", seed=s).weight.detach() for s in (1, 2)]
    )  # (K, P, D)
    examples = make(6, seed=5, tasks=2)
    batch = collate(examples, list(range(6)), tiny.tokenizer.pad_token_id, torch.device("cpu"))
    return teachers, examples, batch


def test_distill_objective_terms_and_zero_gap(tiny, make):
    teachers, _, batch = _setup(tiny, make)
    # A student equal to its teachers (shared = teacher, factors = 1 for R=1 needs one task per P*):
    # use each teacher as its own P* with K=1 by evaluating one task at a time.
    for k in (0, 1):
        sel = batch["task_ids"] == k
        sub = {n: t[sel] for n, t in batch.items()}
        sub["task_ids"] = torch.zeros_like(sub["task_ids"])
        student = MultitaskPrompt.create(teachers[k], 1)
        out = DistillObjective(tiny.model, student, teachers[k : k + 1]).loss(sub)
        assert out.parts["kl"].item() == pytest.approx(0.0, abs=1e-6)
        assert out.parts["mse"].item() == pytest.approx(0.0, abs=1e-10)
        torch.testing.assert_close(out.loss, out.parts["lm"])
    student = MultitaskPrompt.create(teachers.mean(0), 2)
    full = DistillObjective(
        tiny.model, student, teachers, logits_weight=0.5, hidden_weight=2.0
    ).loss(batch)
    torch.testing.assert_close(
        full.loss, full.parts["lm"] + 0.5 * full.parts["kl"] + 2.0 * full.parts["mse"]
    )
    assert full.parts["kl"] > 0 and full.parts["mse"] > 0
    only_kl = DistillObjective(tiny.model, student, teachers, terms=["logits"]).loss(batch)
    torch.testing.assert_close(only_kl.loss, only_kl.parts["kl"])
    assert DistillObjective(tiny.model, student, teachers, terms=["lm", "hidden"]).part_names == (
        "lm",
        "mse",
    )
    dev = DistillObjective(tiny.model, student, teachers).loss(batch, train=False)
    torch.testing.assert_close(dev.loss, full.parts["lm"])


def test_teacher_cache_matches_teacher_forward(tiny, make, tmp_path):
    teachers, examples, batch = _setup(tiny, make)
    vocab = tiny.model.get_output_embeddings().weight.shape[0]
    cache = TeacherCache.build(
        tiny.model, teachers, examples, tiny.tokenizer.pad_token_id, top_k=vocab, batch_size=4
    )
    student = MultitaskPrompt.create(teachers.mean(0), 2)
    live = DistillObjective(tiny.model, student, teachers).loss(batch)
    cached = DistillObjective(tiny.model, student, teachers, cache=cache).loss(batch)
    torch.testing.assert_close(cached.parts["kl"], live.parts["kl"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        cached.parts["mse"], live.parts["mse"], rtol=1e-2, atol=1e-4
    )  # fp16 hidden states
    small = TeacherCache.build(tiny.model, teachers, examples, tiny.tokenizer.pad_token_id, top_k=8)
    small.save(tmp_path / "cache.safetensors")
    again = TeacherCache.load(tmp_path / "cache.safetensors", small.key)
    assert again is not None and all(
        torch.equal(getattr(small, f), getattr(again, f))
        for f in ("values", "indices", "hidden", "offsets")
    )
    assert TeacherCache.load(tmp_path / "cache.safetensors", "another key") is None


def test_layers_mse_is_the_mean_over_layers():
    a, b = torch.ones(2, 2), torch.zeros(2, 2)
    assert layers_mse([a], [b]).item() == hidden_mse(a, b).item() == 1.0
    # Two layers of MSE 1 and 4: the mean, 2.5, not the sum: the scale does not grow with layers.
    assert layers_mse([a, 2 * a], [b, b]).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="one teacher layer per student layer"):
        layers_mse([a, a], [b])


def test_default_hidden_term_is_todays_value(tiny, make):
    """hidden_layers [-1] at the target positions: the final hidden states that produce the
    logits, exactly as before the layers and positions were configurable."""
    teachers, _, batch = _setup(tiny, make)
    student = MultitaskPrompt.create(teachers.mean(0), 2)
    out = DistillObjective(
        tiny.model, student, teachers, logits_weight=0.5, hidden_weight=2.0
    ).loss(batch)
    args = (batch["input_ids"], batch["attention_mask"], batch["labels"])
    s = target_outputs(tiny.model, student(6, batch["task_ids"]), *args)
    with torch.no_grad():
        t = target_outputs(tiny.model, teachers[batch["task_ids"]], *args)
    mse, kl = hidden_mse(s.hidden, t.hidden), kl_full(s.logits, t.logits, 2.0)
    assert torch.equal(out.parts["mse"], mse.detach()) and torch.equal(out.parts["kl"], kl.detach())
    assert torch.equal(out.loss, s.loss + 0.5 * kl + 2.0 * mse)
    explicit = DistillObjective(
        tiny.model, student, teachers, hidden_layers=[2], hidden_positions="target"
    ).loss(batch)  # index 2 of the tiny model's 3 hidden states is the final one
    assert torch.equal(explicit.parts["mse"], mse.detach())


@pytest.mark.parametrize("positions", ["target", "input", "all"])
@pytest.mark.parametrize("layers", [[-1], [0, 1, 2], [-2]])
def test_every_hidden_setting_trains_only_the_student(tiny, make, layers, positions):
    teachers, _, batch = _setup(tiny, make)
    teachers.requires_grad_(True)  # the objective must detach them
    student = MultitaskPrompt.create(teachers.detach().mean(0), 2)
    objective = DistillObjective(
        tiny.model,
        student,
        teachers,
        hidden_layers=layers,
        hidden_positions=positions,
        lm_weight=0.5,
    )
    out = objective.loss(batch)
    assert torch.isfinite(out.loss) and torch.isfinite(out.parts["mse"])
    out.loss.backward()
    grads = {n: p.grad for n, p in objective.named_parameters().items()}
    assert set(grads) == {"prompt.shared", "prompt.cols", "prompt.rows"}
    assert all(
        g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values()
    )
    assert teachers.grad is None
    assert all(p.grad is None for p in tiny.model.parameters())
    # λ_lm scales the LM term: the total is 0.5 · lm + KL + MSE.
    torch.testing.assert_close(out.loss, 0.5 * out.parts["lm"] + out.parts["kl"] + out.parts["mse"])


def test_hidden_positions_select_the_right_rows(tiny, make):
    """Layer 0 is the input embeddings: equal for student and teacher at every token, different
    at the prompt's positions; so only ``all`` has an error there, averaged over its M rows."""
    teachers, _, batch = _setup(tiny, make)
    student = MultitaskPrompt.create(teachers.mean(0), 2)
    mse = {
        pos: DistillObjective(
            tiny.model, student, teachers, hidden_layers=[0], hidden_positions=pos
        )
        .loss(batch)
        .parts["mse"]
        for pos in ("target", "input", "all")
    }
    assert mse["target"].item() == 0.0 and mse["input"].item() == 0.0
    p, d = teachers.shape[1], teachers.shape[2]
    with torch.no_grad():
        diff = student(6, batch["task_ids"]) - teachers[batch["task_ids"]]  # (B, P, D)
    rows = int(batch["attention_mask"].sum()) + 6 * p  # every real token, plus the prompts
    torch.testing.assert_close(mse["all"], (diff**2).sum() / (rows * d))


def test_hidden_settings_are_checked(tiny, make):
    teachers, examples, _ = _setup(tiny, make)
    student = MultitaskPrompt.create(teachers.mean(0), 2)
    with pytest.raises(
        ValueError, match=r"hidden_layers: 3 is outside the backbone's 3 hidden states"
    ):
        DistillObjective(tiny.model, student, teachers, hidden_layers=[3])
    with pytest.raises(ValueError, match="hidden_positions"):
        DistillObjective(tiny.model, student, teachers, hidden_positions="prompt")
    cache = TeacherCache.build(tiny.model, teachers, examples, tiny.tokenizer.pad_token_id, top_k=4)
    with pytest.raises(ValueError, match="teacher cache keeps only the final layer"):
        DistillObjective(tiny.model, student, teachers, cache=cache, hidden_positions="input")
    # Without the hidden term the cache serves any setting; with the default it serves as before.
    DistillObjective(tiny.model, student, teachers, ["logits"], cache=cache, hidden_layers=[0])
    DistillObjective(tiny.model, student, teachers, cache=cache, hidden_layers=[-1])
