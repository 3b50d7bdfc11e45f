"""Prompt KV caches: one entry per task, and the same tokens and scores as the uncached path, with
and without a cached instruction prefix."""

from __future__ import annotations

import torch
from tests.decoding.conftest import generate

from clinprompt.decoding import PromptKVCache, encode_options, option_logprobs


def test_prompt_kv_cache_gives_identical_tokens(lively, batch):
    ids, prompts, keys = batch
    cache = PromptKVCache(lively.model)
    plain = generate(lively, prompts, ids)
    cached = generate(lively, prompts, ids, prompt_cache=cache, task_keys=keys)
    assert cached == plain
    assert sorted(cache.keys()) == ["a", "b"]  # one entry per task, not per row
    again = generate(lively, prompts, ids, prompt_cache=cache, task_keys=keys)  # reused entries
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
    plain = generate(lively, row_prompts, rows)
    assert generate(lively, row_prompts, rows, prompt_cache=cache, task_keys=keys) == plain
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
