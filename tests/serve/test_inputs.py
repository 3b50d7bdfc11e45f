"""Strict inputs: text that is not valid Unicode, numbers sent as strings or booleans, ids that
are not strings and empty option keys are refused with 422 naming the field (never a 500, and the
next request is served); inputs are measured in characters before any tokenization, and the
tokenization runs off the event loop."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from fastapi.testclient import TestClient
from tests.serve.conftest import P

from clinprompt.prompts.bank import TaskEntry
from clinprompt.serve.app import create_app
from clinprompt.serve.engine import EngineArgs, Limits, ServeEngine

OK = {"task": "notes", "inputs": [{"text": "ok"}], "max_new_tokens": 2}
JSON = {"content-type": "application/json"}


@pytest.fixture()
def client(lively, bank):
    gen = torch.Generator().manual_seed(7)
    bank.add_prompt(
        TaskEntry("exam", "qa", "prompt"), torch.randn(P, lively.hidden_size, generator=gen)
    )
    engine = ServeEngine(lively, bank.path, Limits(max_input_chars=200), EngineArgs(wait_ms=1))
    with TestClient(create_app(engine)) as c:
        yield c


@pytest.mark.parametrize(
    ("raw", "code", "where"),
    [
        (b'{"task":"notes","inputs":[{"text":"a \\ud800 b"}]}', "invalid_input", "inputs[0].text"),
        (
            b'{"task":"notes","inputs":[{"id":"\\udc00","text":"a"}]}',
            "invalid_input",
            "inputs[0].id",
        ),
        (b'{"task":"notes","inputs":[{"text":"a","\\ud800":1}]}', "invalid_input", "inputs[0]"),
        (b'{"task":"\\ud800","inputs":[{"text":"a"}]}', "invalid_request", "task"),
        (b'{"task":"notes","inputs":[{"text":"a"}],"\\ud800":1}', "invalid_request", "body"),
    ],
)
def test_lone_surrogates_are_refused_naming_the_field(client, raw, code, where):
    r = client.post("/v1/predict", content=raw, headers=JSON)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code and where in r.json()["error"]["message"]
    assert r.content.isascii()  # the offending text is escaped, never echoed raw
    assert client.post("/v1/predict", json=OK).status_code == 200  # and the server serves on
    paired = b'{"task":"notes","inputs":[{"text":"\\ud83d\\ude00 fine"}],"max_new_tokens":2}'
    assert client.post("/v1/predict", content=paired, headers=JSON).status_code == 200


@pytest.mark.parametrize("value", ["5", True, 5.0, [5]])
def test_max_new_tokens_must_be_an_integer(client, value):
    r = client.post("/v1/predict", json={**OK, "max_new_tokens": value})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert "max_new_tokens" in r.json()["error"]["message"]


@pytest.mark.parametrize("value", [7, {"a": 1}, ["x"], None, True])
def test_ids_must_be_strings(client, value):
    r = client.post("/v1/predict", json={"task": "notes", "inputs": [{"id": value, "text": "a"}]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    assert "'id' must be a string" in r.json()["error"]["message"]


def test_empty_option_keys_are_refused(client):
    q = "Which drug?"
    for options in ({"": "Metformin", "B": "Insulin"}, {"A": "Metformin", "  ": "Insulin"}):
        r = client.post(
            "/v1/predict", json={"task": "exam", "inputs": [{"question": q, "options": options}]}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
        assert "'options' has an empty key" in r.json()["error"]["message"]
    r = client.post(
        "/v1/predict",
        json={
            "task": "exam",
            "inputs": [{"question": q, "options": {"A": "Metformin", "B": "Insulin"}}],
        },
    )
    assert r.status_code == 200 and r.json()["outputs"][0]["prediction"]["answer"] in ("A", "B")


def test_characters_are_counted_before_any_tokenization(client, monkeypatch):
    def never(*_, **__):
        raise AssertionError("an over-long input was tokenized")

    monkeypatch.setattr("clinprompt.serve.admission.encode_prompt", never)
    r = client.post("/v1/predict", json={"task": "notes", "inputs": [{"text": "x" * 201}]})
    assert r.status_code == 413
    assert r.json()["error"]["limit"] == "max_input_chars" and r.json()["error"]["value"] == 200
    options = {"A": "y" * 150, "B": "z" * 50}  # every string of the input counts, keys included
    r = client.post(
        "/v1/predict", json={"task": "exam", "inputs": [{"question": "q", "options": options}]}
    )
    assert r.status_code == 413 and r.json()["error"]["limit"] == "max_input_chars"


def test_a_slow_admission_does_not_stall_healthz(lively, bank, monkeypatch):
    engine = ServeEngine(lively, bank.path, Limits(), EngineArgs(wait_ms=1))
    prepare = engine.prepare
    loop_threads = set()

    def slow_prepare(*args, **kwargs):  # a huge input's tokenization, say
        loop_threads.add(threading.current_thread().name)
        time.sleep(1.5)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(engine, "prepare", slow_prepare)
    with TestClient(create_app(engine)) as client:
        codes = []
        slow = threading.Thread(
            target=lambda: codes.append(client.post("/v1/predict", json=OK).status_code)
        )
        slow.start()
        while not loop_threads:
            time.sleep(0.01)
        t0 = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        assert time.perf_counter() - t0 < 0.5  # answered while the admission still runs
        slow.join()
    assert codes == [200]
