"""The training loop on the tiny model: learning, exact resume, NaN stop, accumulation, target-only loss."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from clinprompt.artifacts import load_tensors
from clinprompt.prompts import IGNORE_INDEX, MultitaskPrompt, SoftPrompt, prompted_logits
from clinprompt.train import (
    BatchPlan,
    LossOutput,
    NonFiniteLossError,
    PromptObjective,
    collate,
    lr_at,
    train,
)
from clinprompt.train.loop import LrGroup

# MPT's two rates: P* and the factors u, v (names from PromptObjective.named_parameters).
TWO_RATES = (
    LrGroup("shared", ("prompt.shared",), 0.2),
    LrGroup("factors", ("prompt.cols", "prompt.rows"), 0.05),
)


def _prompt(tiny, p: int = 4, seed: int = 0) -> SoftPrompt:
    return SoftPrompt.create(p, tiny.model.get_input_embeddings().weight, "vocab", seed=seed)


def _run(tiny, examples, args, out, dev=None, **kw):
    prompt = _prompt(tiny)
    result = train(
        PromptObjective(tiny.model, prompt),
        examples,
        args,
        out,
        pad_id=tiny.tokenizer.pad_token_id,
        dev_set=dev,
        **kw,
    )
    return prompt, result


def test_loss_falls_and_artifacts(tiny, toy, toy_dev, targs, tmp_path):
    prompt, result = _run(tiny, toy, targs(steps=30, eval_every=10), tmp_path / "run", dev=toy_dev)
    first, last = result.losses[0], sum(result.losses[-5:]) / 5
    assert all(math.isfinite(x) for x in result.losses)
    assert last < first - 0.15, (first, last)  # a random 2-layer model caps what a prompt can do
    assert result.best_step is not None and math.isfinite(result.best_metric)
    files = {
        p.relative_to(tmp_path / "run").as_posix()
        for p in (tmp_path / "run").rglob("*")
        if p.is_file()
    }
    assert {
        "final.safetensors",
        "best.safetensors",
        "metrics.jsonl",
        "result.json",
        "checkpoint/state.json",
        "checkpoint/trainable.safetensors",
        "checkpoint/optimizer.safetensors",
        "checkpoint/rng.safetensors",
    } <= files
    assert all(f.endswith((".json", ".jsonl", ".safetensors")) for f in files), (
        files
    )  # never pickle
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows if "dev_loss" in r] == [10, 20, 30]
    # The weights the run ends with are the best on dev, and they are in final.safetensors.
    assert torch.equal(
        load_tensors(tmp_path / "run" / "final.safetensors")["prompt.weight"],
        prompt.weight.detach(),
    )
    assert torch.equal(
        load_tensors(tmp_path / "run" / "best.safetensors")["prompt.weight"], prompt.weight.detach()
    )


def test_finished_run_is_not_retrained(tiny, toy, targs, tmp_path):
    p1, r1 = _run(tiny, toy, targs(steps=3), tmp_path / "run")
    p2, r2 = _run(tiny, toy, targs(steps=3), tmp_path / "run")  # returns the stored result
    assert torch.equal(p1.weight, p2.weight) and r2.losses == r1.losses


class _Crash(Exception):
    pass


def _multitask_run(
    tiny, examples, args, out, dev, crash_at=None, lr_groups=(), pause_at=None, prompt=None
):
    """A two-task MPT run; ``prompt`` (default: a fresh one) is trained in place."""
    if prompt is None:
        prompt = MultitaskPrompt.create(_prompt(tiny).weight.detach(), 2, rank=1)
    plan = BatchPlan(
        [len(x) for x in examples],
        args.batch_size,
        args.seed,
        window=2,
        groups=[x.task_id for x in examples],
        weights=[0.7, 0.3],
    )

    def on_step(step, loss):
        if step == crash_at:
            raise _Crash

    result = train(
        PromptObjective(tiny.model, prompt),
        examples,
        args,
        out,
        pad_id=tiny.tokenizer.pad_token_id,
        dev_set=dev,
        plan=plan,
        on_step=on_step,
        lr_groups=lr_groups,
        pause_at=pause_at,
    )
    return prompt, result


@pytest.mark.parametrize("lr_groups", [(), TWO_RATES], ids=["one-rate", "two-rates"])
def test_exact_resume_bit_identical(tiny, make, targs, tmp_path, lr_groups):
    examples, dev = make(12, seed=3, tasks=2), make(6, seed=4, tasks=2)
    # Crosses epochs (3 batches each), accumulates, evaluates (best checkpoint, patience counters).
    args = targs(steps=9, grad_accum=2, eval_every=4, save_every=3, warmup=0.2, patience=5)
    ref, ref_result = _multitask_run(
        tiny, examples, args, tmp_path / "ref", dev, lr_groups=lr_groups
    )

    with pytest.raises(_Crash):
        _multitask_run(
            tiny, examples, args, tmp_path / "crashed", dev, crash_at=5, lr_groups=lr_groups
        )
    state = json.loads((tmp_path / "crashed" / "checkpoint" / "state.json").read_text())
    assert state["position"]["step"] == 4  # the evaluation at step 4 wrote the last checkpoint
    torch.manual_seed(1234)  # a resumed process does not share the crashed one's RNG
    resumed, res_result = _multitask_run(
        tiny, examples, args, tmp_path / "crashed", dev, lr_groups=lr_groups
    )

    for name in ("shared", "cols", "rows"):
        assert torch.equal(getattr(ref, name), getattr(resumed, name)), name
    assert (
        res_result.best_step == ref_result.best_step
        and res_result.best_metric == ref_result.best_metric
    )
    assert res_result.losses == ref_result.losses[4:]
    ref_opt = load_tensors(tmp_path / "ref" / "checkpoint" / "optimizer.safetensors")
    res_opt = load_tensors(tmp_path / "crashed" / "checkpoint" / "optimizer.safetensors")
    assert all(torch.equal(ref_opt[k], res_opt[k]) for k in ref_opt)

    def log(path):
        rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]

    assert log(tmp_path / "ref") == log(tmp_path / "crashed")  # the log has no duplicated steps


def test_a_paused_run_continues_as_one_run(tiny, make, targs, tmp_path):
    examples, dev = make(12, seed=3, tasks=2), make(6, seed=4, tasks=2)
    args = targs(steps=6, warmup=0.2)
    ref, ref_result = _multitask_run(tiny, examples, args, tmp_path / "ref", None)
    prompt = MultitaskPrompt.create(_prompt(tiny).weight.detach(), 2, rank=1)

    def run(out, pause_at, dev_set=None):
        return _multitask_run(tiny, examples, args, out, dev_set, pause_at=pause_at, prompt=prompt)[
            1
        ]

    paused = run(tmp_path / "paused", 3)
    assert paused.steps == 3 and len(paused.losses) == 3
    assert not (tmp_path / "paused" / "result.json").exists()  # not finished
    assert paused.losses == ref_result.losses[:3]
    again = run(tmp_path / "paused", 3)  # asked again: the pause is where it stays
    assert again.steps == 3 and again.losses == []
    torch.manual_seed(99)
    done = run(tmp_path / "paused", None)
    assert done.steps == 6 and done.losses == ref_result.losses[3:]
    for name in ("shared", "cols", "rows"):  # the same weights as the run that never paused
        assert torch.equal(getattr(ref, name), getattr(prompt, name)), name
    # With a dev set the pause evaluates, and the paused result carries that dev loss.
    judged = run(tmp_path / "judged", 2, dev)
    rows = [
        json.loads(line)
        for line in (tmp_path / "judged" / "metrics.jsonl").read_text().splitlines()
    ]
    dev_rows = [r for r in rows if "dev_loss" in r]
    assert [r["step"] for r in dev_rows] == [2]
    assert judged.best_metric == dev_rows[0]["dev_loss"] and judged.best_step == 2
    # A pause at or past the budget is no pause.
    whole = run(tmp_path / "whole", 6)
    assert whole.steps == 6 and (tmp_path / "whole" / "result.json").exists()


class _NanAt:
    """Wraps an objective; the loss becomes NaN from the n-th micro-batch on."""

    def __init__(self, inner, n):
        self.inner, self.n, self.calls = inner, n, 0
        self.model, self.part_names = inner.model, inner.part_names

    def named_parameters(self):
        return self.inner.named_parameters()

    def loss(self, batch, train=True):
        self.calls += 1
        out = self.inner.loss(batch, train)
        if self.calls >= self.n:
            return LossOutput(
                out.loss * float("nan"), out.num_tokens, {"lm": out.loss.detach() * float("nan")}
            )
        return out


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny, toy, targs, tmp_path):
    prompt = _prompt(tiny)
    objective = _NanAt(PromptObjective(tiny.model, prompt), 4)
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss \(nan\) at step 4 of 8.*checkpoint.*\(step 3\)"
    ):
        train(
            objective,
            toy,
            targs(save_every=1),
            tmp_path / "run",
            pad_id=tiny.tokenizer.pad_token_id,
        )
    saved = load_tensors(tmp_path / "run" / "checkpoint" / "trainable.safetensors")["prompt.weight"]
    assert torch.isfinite(saved).all()
    assert (
        json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["position"]["step"]
        == 3
    )
    assert not (tmp_path / "run" / "result.json").exists()


def test_gradient_accumulation_matches_one_batch(tiny, toy, targs, tmp_path):
    weights = []
    for accum in (1, 2, 4):
        prompt, _ = _run(tiny, toy, targs(steps=4, grad_accum=accum), tmp_path / f"a{accum}")
        weights.append(prompt.weight.detach())
    # Equal up to float rounding (padding and summation order differ); Adam amplifies tiny
    # differences of near-zero gradients, hence not bit-exact.
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(weights[0], weights[2], rtol=1e-4, atol=1e-5)
    assert not torch.equal(weights[0], _prompt(tiny).weight)  # and training did move the prompt


def test_lm_loss_only_over_target_tokens(tiny, toy):
    prompt = _prompt(tiny)
    batch = collate(toy, [0, 1, 2, 3], tiny.tokenizer.pad_token_id, torch.device("cpu"))
    out = PromptObjective(tiny.model, prompt).loss(batch)
    with torch.no_grad():
        logits = prompted_logits(
            tiny.model, prompt(4), batch["input_ids"], batch["attention_mask"]
        )  # (B, P + T, V)
    p = prompt.num_tokens
    pred, gold = logits[:, p - 1 : -1], batch["labels"]  # position p - 1 + t predicts token t
    mask = gold != IGNORE_INDEX
    expected = F.cross_entropy(pred[mask].float(), gold[mask])
    assert out.num_tokens == int(mask.sum()) == 4 * 4  # 3 target tokens + EOS per example
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-5)
    # Changing input tokens' labels would not matter: only target positions are read.
    assert int((batch["labels"] != IGNORE_INDEX).sum()) == out.num_tokens


def test_lr_schedule(targs):
    args = targs(steps=10, warmup=0.2, lr=1.0, min_lr_ratio=0.0)
    lrs = [lr_at(s, args) for s in range(10)]
    assert lrs[:2] == [0.5, 1.0]
    assert lrs[2] == 1.0 and lrs[-1] == pytest.approx(1 / 8)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))
    # A group's peak follows the same schedule, scaled: half the rate at every step.
    assert [lr_at(s, args, peak=0.5) for s in range(10)] == pytest.approx([x / 2 for x in lrs])
    assert [lr_at(s, args, peak=1.0) for s in range(10)] == lrs


def test_two_rate_groups_get_their_rates(tiny, make, targs, tmp_path):
    examples = make(8, seed=3, tasks=2)
    args = targs(steps=5, warmup=0.4, lr=0.3, save_every=5)
    prompt, _ = _multitask_run(tiny, examples, args, tmp_path / "run", None, lr_groups=TWO_RATES)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    for r in rows:
        step = r["step"] - 1
        assert r["lr"] == lr_at(step, args)  # the stage's rate, as before
        assert r["lr_shared"] == lr_at(step, args, 0.2)
        assert r["lr_factors"] == lr_at(step, args, 0.05)
    assert rows[1]["lr_shared"] == 0.2 and rows[1]["lr_factors"] == 0.05  # the peaks, after warm-up
    # Each parameter moved by at most its own group's rates (Adam: |update| <= lr per step).
    start = MultitaskPrompt.create(_prompt(tiny).weight.detach(), 2, rank=1)
    moved = {
        n: (getattr(prompt, n) - getattr(start, n)).abs().max().item()
        for n in ("shared", "cols", "rows")
    }
    budget = {
        g: sum(lr_at(s, args, peak) for s in range(5)) for g, peak in (("s", 0.2), ("f", 0.05))
    }
    assert 0 < moved["shared"] <= 1.01 * budget["s"]
    assert 0 < moved["cols"] <= 1.01 * budget["f"] and 0 < moved["rows"] <= 1.01 * budget["f"]
    assert moved["shared"] > budget["f"]  # P* moved further than the factors' rates allow
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["lr_groups"] == {"shared": 0.2, "factors": 0.05}


def test_lr_groups_are_checked(tiny, make, targs, tmp_path):
    examples = make(8, seed=3, tasks=2)
    overlap = (LrGroup("a", ("prompt",), 0.1), LrGroup("b", ("prompt.cols",), 0.2))
    with pytest.raises(ValueError, match=r"prompt.cols.*in learning-rate groups 'a' and 'b'"):
        _multitask_run(
            tiny, examples, targs(steps=1), tmp_path / "overlap", None, lr_groups=overlap
        )
    # A checkpoint written with other groups is not resumed under new ones.
    with pytest.raises(_Crash):
        _multitask_run(
            tiny, examples, targs(steps=4, save_every=1), tmp_path / "run", None, crash_at=2
        )
    with pytest.raises(ValueError, match="learning-rate groups"):
        _multitask_run(
            tiny,
            examples,
            targs(steps=4, save_every=1),
            tmp_path / "run",
            None,
            lr_groups=TWO_RATES,
        )


def test_task_metric_selects_best_and_stops_early(tiny, toy, toy_dev, targs, tmp_path):
    values = iter([0.5, 0.7, 0.6, 0.4, 0.9])  # higher is better: best at the 2nd evaluation
    prompt, result = _run(
        tiny, toy, targs(steps=20, eval_every=2, patience=2), tmp_path / "run", dev=toy_dev,
        metric_fn=lambda step: next(values), metric_mode="max",
    )  # fmt: skip
    assert result.stopped_early and result.steps == 8  # evaluations at 2, 4, 6, 8: two without gain
    assert result.best_step == 4 and result.best_metric == 0.7
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["dev_metric"] for r in rows if "dev_metric" in r] == [0.5, 0.7, 0.6, 0.4]
    best = load_tensors(tmp_path / "run" / "best.safetensors")["prompt.weight"]
    assert torch.equal(prompt.weight.detach(), best)  # the run ends on the best weights
