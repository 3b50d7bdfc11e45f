"""Option scoring: each score is minus the training loss of " " + candidate + EOS, and candidates of
uneven number and length score as each row alone."""

from __future__ import annotations

import pytest
import torch
from tests.decoding.conftest import TEXTS

from clinprompt.data.collate import encode_example
from clinprompt.decoding import PromptKVCache, encode_options, option_logprobs
from clinprompt.prompts import prompted_logits
from clinprompt.tasks.base import Example


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


@pytest.mark.parametrize("cached", [False, True])
def test_prefill_in_passes_gives_the_scores_of_one_pass(lively, batch, cached):
    """A prefill cut into spans of a few positions (a server's long input) scores the same."""
    from clinprompt.decoding import option_logprob_passes, run_passes
    from clinprompt.decoding.prefill import _spans

    ids, prompts, keys = batch
    tok = lively.tokenizer
    options = [encode_options(tok, ["yes", "no", "not stated"])] * len(ids)
    kw = {"pad_token_id": tok.pad_token_id}
    if cached:
        kw |= {"prompt_cache": PromptKVCache(lively.model), "task_keys": keys}
    whole = option_logprobs(lively.model, prompts, ids, options, **kw)
    passes = option_logprob_passes(lively.model, prompts, ids, options, max_prefill_tokens=6, **kw)
    steps = 0

    def counted():
        nonlocal steps
        while True:
            try:
                next(passes)
                steps += 1
            except StopIteration as done:
                return done.value

    cut = counted()
    torch.testing.assert_close(torch.tensor(cut), torch.tensor(whole), atol=1e-4, rtol=1e-5)
    width = max(map(len, ids)) + (0 if cached else prompts.shape[1])
    assert steps > 3 and steps >= width * len(ids) // 6  # many short prefill passes
    assert run_passes(option_logprob_passes(lively.model, prompts, ids, options, **kw)) == whole
    # spans cover every column once; the last gives the logits
    assert _spans(10, 2, 3, 6) == [(0, 3), (3, 6), (6, 7), (7, 10)]
    assert _spans(10, 2, 1, None) == [(0, 10)] and _spans(10, 2, 1, 20) == [(0, 10)]
