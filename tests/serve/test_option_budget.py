"""Option scoring is bounded: per request by counts and a token budget (413/422 naming the
limit), per pass by a memory budget — candidates are scored in chunks whose scores equal the
scores of one pass."""

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


def test_option_chunks_fit_the_budget_and_keep_every_row_once():
    rests = [0, 3, 1, 5, 2, 2, 9]
    row, token, budget = 10, 2, 40
    groups = option_chunks(rests, row, token, budget)
    assert [n for g in groups for n in g] == list(range(len(rests)))  # consecutive, each once
    for g in groups:
        cost = len(g) * (row + max(rests[n] for n in g) * token)
        assert cost <= budget or len(g) == 1  # a row over the budget alone runs alone
    assert groups[-1] == [6]  # 10 + 9 * 2 = 28 fits alone, not with its neighbour
    assert option_chunks(rests, row, token, None) == [list(range(len(rests)))]
    assert option_chunks(rests, row, token, 1) == [[n] for n in range(len(rests))]


@pytest.mark.parametrize("cached", [False, True])
def test_chunked_scores_equal_one_pass_and_each_pass_fits_the_budget(lively, cached):
    ids, prompts, options = _rows(lively)
    tok = lively.tokenizer
    kw = {"pad_token_id": tok.pad_token_id}
    if cached:
        kw |= {"prompt_cache": PromptKVCache(lively.model), "task_keys": ["a", "b", "a"]}
    one_pass = option_logprobs(lively.model, prompts, ids, options, **kw)
    passes: list[int] = []  # rows of each candidate pass (the prefill keeps 1 logit)

    def record(_, args, kwargs):
        if "logits_to_keep" not in kwargs:
            passes.append(kwargs["input_ids"].shape[0])

    hook = lively.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        sizes = {}
        for budget in (None, 1, 5_000_000):
            passes.clear()
            chunked = option_logprobs(
                lively.model, prompts, ids, options, max_chunk_bytes=budget, **kw
            )
            assert chunked == one_pass  # identical, not merely close
            assert sum(passes) == sum(len(o) for o in options)  # every candidate, once
            sizes[budget] = list(passes)
        assert sizes[None] == [11] and sizes[1] == [1] * 11  # all at once; one by one
        assert 1 < len(sizes[5_000_000]) < 11  # chunks of several candidates
        # more candidates make more passes of the same size, not larger passes
        many = [encode_options(tok, [f"option {k}" for k in range(40)])] * 3
        passes.clear()
        option_logprobs(lively.model, prompts, ids, many, max_chunk_bytes=5_000_000, **kw)
        assert len(passes) > len(sizes[5_000_000]) and max(passes) <= max(sizes[5_000_000])
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
