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
