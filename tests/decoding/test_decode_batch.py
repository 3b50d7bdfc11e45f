"""Greedy generation and option scoring: padding-, batching- and cache-invariant, and consistent
with the training layout (prompt ⊕ encode_prompt ids, then " " + target + EOS)."""

from __future__ import annotations

import pytest
import torch

from clinprompt.backbone import tiny_backbone
from clinprompt.data.collate import encode_example, encode_prompt
from clinprompt.decoding import (
    DecodeBatch,
    PromptKVCache,
    encode_options,
    greedy_generate,
    option_logprobs,
)
from clinprompt.prompts import prompted_logits
from clinprompt.tasks.base import Example

TEXTS = [
    "Warfarin interacts with aspirin.",
    "Hb 9.8 g/dL, started on iron supplements twice daily.",
    "BP 120/80.",
]


@pytest.fixture(scope="module")
def lively():
    # A larger init scale than the default tiny model, so greedy outputs vary from step to step
    # (the default tiny model repeats one token, which would make equality checks vacuous).
    return tiny_backbone(seed=0, device="cpu", initializer_range=0.2)


@pytest.fixture(scope="module")
def batch(lively):
    tok = lively.tokenizer
    ids = [encode_prompt(tok, Example("Extract drugs.\n\n", t, "")) for t in TEXTS]
    gen = torch.Generator().manual_seed(1)
    task_prompts = torch.randn(2, 4, 64, generator=gen) * 0.5  # two tasks, P=4, D=64
    keys = ["a", "b", "a"]  # mixed tasks in one batch
    prompts = task_prompts[[0, 1, 0]]  # (B, P, D)
    return ids, prompts, keys


def _gen(bb, prompts, ids, n=10, **kw):
    return greedy_generate(
        bb.model, prompts, ids, n, bb.tokenizer.eos_token_id, bb.tokenizer.pad_token_id, **kw
    )


def test_batched_equals_one_by_one(lively, batch):
    ids, prompts, _ = batch
    together = _gen(lively, prompts, ids)
    alone = [_gen(lively, prompts[i : i + 1], [ids[i]])[0] for i in range(len(ids))]
    assert together == alone
    assert all(len(row) == 10 for row in together)
    assert len({tuple(r) for r in together}) == 3 and len(set(together[0])) > 3  # non-degenerate


def test_prompt_kv_cache_gives_identical_tokens(lively, batch):
    ids, prompts, keys = batch
    cache = PromptKVCache(lively.model)
    plain = _gen(lively, prompts, ids)
    cached = _gen(lively, prompts, ids, prompt_cache=cache, task_keys=keys)
    assert cached == plain
    assert sorted(cache.keys()) == ["a", "b"]  # one entry per task, not per row
    again = _gen(lively, prompts, ids, prompt_cache=cache, task_keys=keys)  # reused entries
    assert again == plain
    cache.invalidate(keep={"a"})
    assert cache.keys() == ["a"]


def test_cached_instruction_prefix_gives_identical_tokens(lively, batch):
    ids, prompts, _ = batch
    tok = lively.tokenizer
    heads = {
        "a": tok("Extract drugs.\n\n", add_special_tokens=False)["input_ids"],
        "c": tok("Summarise.\n\n", add_special_tokens=False)["input_ids"],
    }
    rows = [
        ids[0],
        heads["c"] + tok(" BP 120/80.", add_special_tokens=False)["input_ids"],
        ids[2],
        ids[1],
    ]
    keys = ["a", "c", "a", "x"]  # prefixes of different lengths, and a key with none
    row_prompts = prompts[[0, 1, 2, 1]]
    cache = PromptKVCache(lively.model)
    for key, head in heads.items():
        cache.set_prefix(key, head)
    cache.set_prefix("x", [1, 2, 3])  # row 3 does not start with it: the prompt alone is used
    plain = _gen(lively, row_prompts, rows)
    assert _gen(lively, row_prompts, rows, prompt_cache=cache, task_keys=keys) == plain
    assert sorted(cache.keys()) == ["a", "c", "x"]
    options = [encode_options(tok, ["yes", "no"])] * len(rows)
    expected = option_logprobs(
        lively.model, row_prompts, rows, options, pad_token_id=tok.pad_token_id
    )
    got = option_logprobs(
        lively.model,
        row_prompts,
        rows,
        options,
        prompt_cache=cache,
        task_keys=keys,
        pad_token_id=tok.pad_token_id,
    )
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=1e-5, atol=1e-4)


def test_rows_joining_a_running_batch_decode_as_alone(lively, batch):
    ids, prompts, keys = batch
    tok = lively.tokenizer
    alone = [_gen(lively, prompts[i : i + 1], [ids[i]], n=8)[0] for i in range(3)]
    cache = PromptKVCache(lively.model)
    cache.set_prefix("a", ids[0][:4])  # rows 0 and 2 share their first 4 ids (the instruction)
    running = DecodeBatch(lively.model, tok.eos_token_id, tok.pad_token_id, cache)
    done = dict(running.add(prompts[2:3], [ids[2]], [3], ["short"], ["a"]))
    for _ in range(2):
        done.update(running.step())
    assert done == {"short": alone[2][:3]} and not running  # finished on its budget
    done.update(running.add(prompts[:1], [ids[0]], [8], ["r0"], ["a"]))
    for _ in range(3):
        done.update(running.step())
    done.update(
        running.add(prompts[1:3], ids[1:3], [8, 0], ["r1", "r2"], ["b", "a"])
    )  # join mid-flight
    assert done.pop("r2") == []  # a zero budget finishes at once
    while running:
        done.update(running.step())
    assert done == {"short": alone[2][:3], "r0": alone[0], "r1": alone[1]}


def test_greedy_matches_argmax_of_full_forward(lively, batch):
    ids, prompts, _ = batch
    out = _gen(lively, prompts[:1], ids[:1], n=5)[0]
    seq = list(ids[0])
    for tok in out:  # recompute every step from scratch, no cache
        logits = prompted_logits(lively.model, prompts[:1], torch.tensor([seq]))
        assert int(logits[0, -1].argmax()) == tok
        seq.append(tok)


def test_stops_at_eos_per_row(lively, batch):
    ids, prompts, _ = batch
    free = _gen(lively, prompts, ids)
    eos = free[0][3]  # pretend the 4th token of row 0 is EOS
    stopped = greedy_generate(lively.model, prompts, ids, 10, eos, lively.tokenizer.pad_token_id)
    for row_free, row in zip(free, stopped, strict=True):
        cut = row_free.index(eos) if eos in row_free else len(row_free)
        assert row == row_free[:cut]
    assert stopped[0] == free[0][:3]


def test_per_row_budgets_and_no_prompt(lively, batch):
    ids, _, _ = batch
    out = greedy_generate(
        lively.model,
        None,
        ids,
        [1, 4, 0],
        lively.tokenizer.eos_token_id,
        lively.tokenizer.pad_token_id,
    )
    full = _gen(lively, None, ids)
    assert out == [full[0][:1], full[1][:4], []]


def test_option_logprobs_match_training_loss(lively, batch):
    ids, prompts, keys = batch
    tok = lively.tokenizer
    cands = ["entailment", "neutral", "contradiction"]
    options = [encode_options(tok, cands)] * len(ids)
    scores = option_logprobs(lively.model, prompts, ids, options, pad_token_id=tok.pad_token_id)
    cached = option_logprobs(
        lively.model,
        prompts,
        ids,
        options,
        prompt_cache=PromptKVCache(lively.model),
        task_keys=keys,
        pad_token_id=tok.pad_token_id,
    )
    torch.testing.assert_close(torch.tensor(cached), torch.tensor(scores), rtol=1e-5, atol=1e-4)
    # Each score is minus the summed training cross-entropy of " " + candidate + EOS.
    for i, text in enumerate(TEXTS):
        for j, cand in enumerate(cands):
            enc = encode_example(tok, Example("Extract drugs.\n\n", text, cand))
            assert enc.input_ids == ids[i] + options[i][j]
            logp = prompted_logits(lively.model, prompts[i : i + 1], torch.tensor([enc.input_ids]))[
                0
            ].log_softmax(-1)
            p = prompts.shape[1]
            expected = sum(
                float(logp[p + k - 1, enc.input_ids[k]])
                for k in range(enc.prompt_length, len(enc.input_ids))
            )
            assert scores[i][j] == pytest.approx(expected, abs=1e-4)
    normed = option_logprobs(
        lively.model, prompts, ids, options, length_normalize=True, pad_token_id=tok.pad_token_id
    )
    lengths = [len(o) for o in options[0]]
    assert normed[0] == pytest.approx(
        [s / n for s, n in zip(scores[0], lengths, strict=True)], abs=1e-5
    )


def test_bad_arguments_are_explained(lively, batch):
    ids, prompts, _ = batch
    with pytest.raises(ValueError, match="prompts must be"):
        _gen(lively, prompts[:2], ids)
    with pytest.raises(ValueError, match="task keys"):
        _gen(lively, prompts, ids, prompt_cache=PromptKVCache(lively.model), task_keys=["a"])
    with pytest.raises(ValueError, match="empty"):
        _gen(lively, None, [])


def test_option_logprobs_with_uneven_candidates_equal_scoring_each_row_alone(lively, batch):
    """Candidates differ in number and length per example; each score equals its row scored alone."""
    ids, prompts, keys = batch
    tok = lively.tokenizer
    per_example = [["A"], ["yes", "no", "maybe"], ["severe hepatotoxicity with jaundice", "none"]]
    options = [encode_options(tok, c) for c in per_example]
    cache = PromptKVCache(lively.model)
    together = option_logprobs(
        lively.model,
        prompts,
        ids,
        options,
        prompt_cache=cache,
        task_keys=keys,
        pad_token_id=tok.pad_token_id,
    )
    assert [len(s) for s in together] == [1, 3, 2]
    p = prompts.shape[1]
    for i, cands in enumerate(options):
        for j, cand in enumerate(cands):
            seq = ids[i] + cand
            logp = prompted_logits(lively.model, prompts[i : i + 1], torch.tensor([seq]))[
                0
            ].log_softmax(-1)
            alone = sum(float(logp[p + k - 1, seq[k]]) for k in range(len(ids[i]), len(seq)))
            assert together[i][j] == pytest.approx(alone, abs=1e-4)


def test_freed_slots_are_taken_over_and_compacted_with_outputs_as_alone(lively, batch):
    """Rows leave and join over many steps: freed slots are reused in place (no new slot), a row
    finding none is merged, free slots are compacted; every row decodes as it would alone."""
    ids, prompts, keys = batch
    tok = lively.tokenizer
    alone = {i: _gen(lively, prompts[i : i + 1], [ids[i]], n=12)[0] for i in range(3)}
    cache = PromptKVCache(lively.model)
    running = DecodeBatch(
        lively.model, tok.eos_token_id, tok.pad_token_id, cache, compact_ratio=10.0
    )
    done: dict[str, list[int]] = {}
    budget = {"a2": 2, "b0": 12, "c1": 12, "d0": 5, "e2": 9, "f1": 12}

    def join(*tags: str) -> None:
        rows = [int(t[1]) for t in tags]
        done.update(
            running.add(
                prompts[rows],
                [ids[r] for r in rows],
                [budget[t] for t in tags],
                list(tags),
                [keys[r] for r in rows],
            )
        )

    join("a2", "b0", "c1")
    for _ in range(2):
        done.update(running.step())
    assert (
        "a2" in done and running.slots == 3 and len(running) == 2
    )  # a2's slot is free, not dropped
    join("d0")  # narrower than the batch: takes a2's slot in place
    assert running.slots == 3 and len(running) == 3
    for _ in range(5):
        done.update(running.step())
    assert "d0" in done
    join("e2")  # takes d0's slot
    assert running.slots == 3
    for _ in range(6):
        done.update(running.step())
    assert set(done) == {"a2", "d0", "b0", "c1"} and running.slots == 3 and len(running) == 1
    running.compact_ratio = 0.25
    done.update(running.step())  # two free slots for one live row: compacted
    assert running.slots == 1
    join("f1")
    while running:
        done.update(running.step())
    assert done == {t: alone[int(t[1])][: budget[t]] for t in budget}
