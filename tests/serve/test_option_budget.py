"""Option scoring is bounded: per request by counts and a token budget (413/422 naming the
limit), per pass by a memory budget — candidates are scored in chunks whose scores equal the
scores of one pass (to float rounding)."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from tests.serve.conftest import P

from clinprompt.data.collate import encode_prompt
from clinprompt.decoding import PromptKVCache, encode_options, option_logprobs
from clinprompt.decoding.scoring import option_chunks
from clinprompt.prompts.bank import TaskEntry
from clinprompt.serve.admission import Admission, Limits, ServeError
from clinprompt.serve.app import create_app
from clinprompt.serve.engine import EngineArgs, ServeEngine
from clinprompt.serve.runtime import load_task_table
from clinprompt.tasks.base import Example

TEXTS = ["Warfarin interacts with aspirin.", "Hb 9.8 g/dL, iron started.", "BP 120/80."]
CANDIDATES = [
    ["A", "B", "C", "D", "E"],
    ["yes", "no", "maybe"],
    ["severe hepatotoxicity with jaundice", "none", "rash"],
]


def _rows(lively):
    tok = lively.tokenizer
    ids = [encode_prompt(tok, Example("Pick one.\n\n", t, "")) for t in TEXTS]
    prompts = torch.randn(3, P, lively.hidden_size, generator=torch.Generator().manual_seed(3))
    return ids, prompts, [encode_options(tok, c) for c in CANDIDATES]


def test_option_chunks_fit_the_budget_and_keep_every_candidate_once():
    owners = [0, 0, 0, 1, 1, 2, 2]
    rests = [0, 3, 1, 5, 2, 2, 9]
    positions, row, token, pair, budget = 4, 10, 2, 1, 80

    def cost(group):
        fed: dict[int, int] = {}
        for n in group:
            fed[owners[n]] = fed.get(owners[n], 0) + rests[n]
        t = max(fed.values())
        return len(fed) * (row + t * token + t * (positions + t) * pair)

    groups = option_chunks(owners, rests, positions, row, token, pair, budget)
    assert [n for g in groups for n in g] == list(range(len(rests)))  # consecutive, each once
    assert len(groups) > 1
    for g in groups:
        assert cost(g) <= budget or len(g) == 1  # a candidate over the budget runs alone
    assert groups[-1] == [6]  # 9 tokens packed: 10 + 18 + 117 = 145 > 80, so alone
    # packing: one input's candidates share a row, so two short ones cost less than two rows
    assert cost([1, 2]) < cost([2, 3])
    assert option_chunks(owners, rests, positions, row, token, pair, None) == [list(range(7))]
    assert option_chunks(owners, rests, positions, row, token, pair, 1) == [[n] for n in range(7)]


@pytest.mark.parametrize("cached", [False, True])
def test_chunked_scores_equal_one_pass_and_each_pass_fits_the_budget(lively, cached):
    ids, prompts, options = _rows(lively)
    tok = lively.tokenizer
    kw = {"pad_token_id": tok.pad_token_id}
    if cached:
        kw |= {"prompt_cache": PromptKVCache(lively.model), "task_keys": ["a", "b", "a"]}
    one_pass = option_logprobs(lively.model, prompts, ids, options, **kw)
    passes: list[tuple[int, int]] = []  # (rows, tokens fed per row) of each candidate pass

    def record(_, args, kwargs):
        if "logits_to_keep" not in kwargs:  # the prefill keeps 1 logit; candidate passes all
            passes.append(tuple(kwargs["input_ids"].shape))

    hook = lively.model.register_forward_pre_hook(record, with_kwargs=True)
    vocab = lively.model.config.vocab_size
    try:
        sizes = {}
        for budget in (None, 1, 5_000_000):
            passes.clear()
            chunked = option_logprobs(
                lively.model, prompts, ids, options, max_chunk_bytes=budget, **kw
            )
            assert [len(s) for s in chunked] == [len(s) for s in one_pass]
            torch.testing.assert_close(
                torch.tensor(sum(chunked, [])), torch.tensor(sum(one_pass, [])), atol=1e-5, rtol=0
            )
            sizes[budget] = list(passes)
        # all at once: one packed row per input; a budget of 1 byte: each candidate alone
        assert [m for m, _ in sizes[None]] == [3]
        assert len(sizes[1]) == 11 and all(m == 1 for m, _ in sizes[1])
        assert 1 < len(sizes[5_000_000]) < 11  # chunks of several candidates
        # more candidates make more passes, each within the budget (its logits alone: 8 B/value)
        many = [encode_options(tok, [f"option {k}" for k in range(40)])] * 3
        passes.clear()
        option_logprobs(lively.model, prompts, ids, many, max_chunk_bytes=5_000_000, **kw)
        assert len(passes) > len(sizes[5_000_000])
        assert max(m * t * vocab * 8 for m, t in passes) <= 5_000_000
        assert sum(m * t for m, t in passes) >= 120  # every candidate fed (at least a token)
    finally:
        hook.remove()


@pytest.fixture()
def qa_bank(bank, lively):
    gen = torch.Generator().manual_seed(7)
    bank.add_prompt(
        TaskEntry("exam", "qa", "prompt"), torch.randn(P, lively.hidden_size, generator=gen)
    )
    return bank


def _refusal(admission, table, inputs, **kw) -> ServeError:
    with pytest.raises(ServeError) as info:
        admission.prepare(table, "exam", inputs, **kw)
    return info.value


def test_option_limits_refuse_with_the_limit_named(lively, qa_bank):
    table = load_task_table(qa_bank, lively.tokenizer, torch.device("cpu"), torch.float32)
    lim = Limits(max_options=4, max_option_tokens=6, max_scoring_tokens=400)
    admission = Admission(lively.tokenizer, lim)
    q = "Which drug is first-line for type 2 diabetes?"
    ok = {"question": q, "options": {"A": "Metformin", "B": "Insulin"}}
    assert admission.prepare(table, "exam", [ok])[0].option_ids is not None
    err = _refusal(admission, table, [{"question": q, "options": {k: k for k in "ABCDE"}}])
    assert (err.status, err.code, err.extra["limit"], err.extra["value"]) == (
        422,
        "too_many_options",
        "max_options",
        4,
    )
    long_key = {"question": q, "options": {"the first option, spelled out at length": "x"}}
    err = _refusal(admission, table, [long_key])
    assert (err.status, err.code, err.extra["limit"]) == (
        413,
        "option_too_long",
        "max_option_tokens",
    )
    err = _refusal(admission, table, [ok] * 8)  # each input fits; the request does not
    assert (err.status, err.code, err.extra["limit"], err.extra["value"]) == (
        413,
        "scoring_too_large",
        "max_scoring_tokens",
        400,
    )
    assert "max_scoring_tokens" in err.message
    generated = admission.prepare(table, "exam", [ok] * 8, mode="generate")  # nothing scored
    assert len(generated) == 8 and generated[0].candidates is None


def test_option_budget_over_http_and_the_server_keeps_serving(lively, qa_bank):
    limits = Limits(max_options=4, max_scoring_tokens=400)
    engine = ServeEngine(lively, qa_bank.path, limits, EngineArgs(wait_ms=1, scoring_batch_mb=0.05))
    q = "Which drug is first-line for type 2 diabetes?"
    ok = {"question": q, "options": {"A": "Metformin", "B": "Insulin", "C": "Diet"}}
    with TestClient(create_app(engine)) as client:
        r = client.post("/v1/predict", json={"task": "exam", "inputs": [ok] * 8})
        assert r.status_code == 413 and r.json()["error"]["limit"] == "max_scoring_tokens"
        many = {"question": q, "options": {k: k for k in "ABCDEF"}}
        r = client.post("/v1/predict", json={"task": "exam", "inputs": [many]})
        assert r.status_code == 422 and r.json()["error"]["limit"] == "max_options"
        r = client.post("/v1/predict", json={"task": "exam", "inputs": [ok, ok]})
        assert r.status_code == 200, r.text
        out = r.json()["outputs"]
        assert out[0]["scores"] == out[1]["scores"] and set(out[0]["scores"]) == {"A", "B", "C"}
