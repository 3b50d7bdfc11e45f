"""The HTTP API on the tiny backbone: answers match the generation engine, limits and errors are
JSON with the right status, and the server keeps serving after every error."""

from __future__ import annotations

import threading

import pytest
import torch
from fastapi.testclient import TestClient

from clinprompt.data.collate import encode_prompt
from clinprompt.decoding import encode_options, greedy_generate, option_logprobs
from clinprompt.serve.app import create_app
from clinprompt.serve.engine import EngineArgs, Limits, ServeEngine
from clinprompt.tasks.base import Example

KEY = "s3cret"


def _client(lively, bank, limits=None, args=None, api_key=None):
    engine = ServeEngine(lively, bank.path, limits or Limits(), args or EngineArgs(wait_ms=1))
    return engine, TestClient(create_app(engine, api_key=api_key))


def _direct_generation(lively, bank, task, text, n):
    tok = lively.tokenizer
    ids = encode_prompt(tok, Example("Repeat the text.\n\n", text, ""))
    out = greedy_generate(
        lively.model,
        bank.task_prompt(task).unsqueeze(0),
        [ids],
        n,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    return tok.decode(out[0], skip_special_tokens=True).strip()


def test_predict_generates_what_the_engine_generates(lively, bank):
    _, client = _client(lively, bank)
    with client:
        r = client.post(
            "/v1/predict",
            json={
                "task": "notes",
                "inputs": [{"text": "BP 120/80."}, {"id": "x7", "text": "Hb 9.8"}],
                "max_new_tokens": 6,
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["task"] == "notes" and body["task_type"] == "echo"
        first, second = body["outputs"]
        assert first["id"] == "0" and second["id"] == "x7"
        assert first["mode"] == "generate" and first["scores"] is None and first["parsed_ok"]
        assert first["generation"] == _direct_generation(lively, bank, "notes", "BP 120/80.", 6)
        assert first["prediction"] == {
            "id": "0",
            "answer": first["generation"],
        }  # inputs are not echoed


def test_classification_scores_candidates(lively, bank):
    _, client = _client(lively, bank)
    with client:
        r = client.post(
            "/v1/predict", json={"task": "triage", "inputs": [{"text": "Chest pain at rest."}]}
        )
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["mode"] == "score" and set(out["scores"]) == {"urgent", "routine"}
        tok = lively.tokenizer
        ids = encode_prompt(tok, Example("Repeat the text.\n\n", "Chest pain at rest.", ""))
        expected = option_logprobs(
            lively.model,
            bank.task_prompt("triage").unsqueeze(0),
            [ids],
            [encode_options(tok, ["urgent", "routine"])],
        )[0]
        assert [out["scores"]["urgent"], out["scores"]["routine"]] == pytest.approx(
            expected, abs=1e-4
        )
        assert out["generation"] == max(out["scores"], key=out["scores"].get)
        forced = client.post(
            "/v1/predict",
            json={
                "task": "triage",
                "inputs": [{"text": "x"}],
                "mode": "generate",
                "max_new_tokens": 2,
            },
        ).json()
        assert forced["outputs"][0]["mode"] == "generate"
        r = client.post(
            "/v1/predict", json={"task": "notes", "inputs": [{"text": "x"}], "mode": "score"}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "not_scorable"


def test_mixed_task_batch_equals_separate_batches(lively, bank):
    engine = ServeEngine(lively, bank.path)
    reqs = [
        ("notes", "Warfarin and aspirin."),
        ("teacher", "Hb 9.8 g/dL today."),
        ("triage", "Fever."),
        ("notes", "BP 120/80."),
    ]
    items = [
        it for task, text in reqs for it in engine.prepare(task, [{"text": text}], max_new_tokens=5)
    ]
    engine.run_batch(items)  # one mixed batch (generation rows and scoring rows)
    mixed = [it.future.result(0) for it in items]
    for (task, text), got in zip(reqs, mixed, strict=True):
        alone = engine.prepare(task, [{"text": text}], max_new_tokens=5)
        engine.run_batch(alone)
        expected = alone[0].future.result(0)
        assert got["generation"] == expected["generation"]
        if expected["scores"]:
            assert got["scores"] == pytest.approx(expected["scores"], abs=1e-4)
    assert len(engine.prompt_cache) == 3  # one prompt cache per task


def test_concurrent_requests_are_micro_batched(lively, bank):
    engine, client = _client(lively, bank, args=EngineArgs(max_batch=8, wait_ms=300))
    codes = []
    with client:

        def send(task):
            codes.append(
                client.post(
                    "/v1/predict",
                    json={"task": task, "inputs": [{"text": "Aspirin."}], "max_new_tokens": 3},
                ).status_code
            )

        threads = [
            threading.Thread(target=send, args=(t,))
            for t in ("notes", "teacher", "notes", "triage")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        health = client.get("/healthz").json()
    assert codes == [200] * 4
    assert health["requests"] == 4 and health["batches"] < 4


def test_errors_are_json_and_the_server_keeps_serving(lively, bank):
    limits = Limits(max_input_tokens=8, max_inputs=2, max_new_tokens=16)
    _, client = _client(lively, bank, limits=limits)
    ok = {"task": "notes", "inputs": [{"text": "ok"}], "max_new_tokens": 2}
    with client:
        cases = [
            ({"task": "nope", "inputs": [{"text": "x"}]}, 404, "unknown_task"),
            ({"task": "notes", "inputs": []}, 422, "empty_inputs"),
            ({"task": "notes", "inputs": [{"text": "a"}] * 3}, 422, "too_many_inputs"),
            ({"task": "notes", "inputs": [{"text": "word " * 50}]}, 413, "input_too_long"),
            ({"task": "notes", "inputs": [{"txt": "x"}]}, 422, "invalid_input"),
            ({"task": "notes", "inputs": "x"}, 422, "invalid_request"),
            ({"task": 3, "inputs": [1]}, 422, "invalid_request"),
            (
                {"task": "notes", "inputs": [{"text": "x"}], "max_new_tokens": 99},
                422,
                "max_new_tokens",
            ),
        ]
        for body, status, code in cases:
            r = client.post("/v1/predict", json=body)
            assert r.status_code == status, (body, r.text)
            assert r.json()["error"]["code"] == code
            assert client.post("/v1/predict", json=ok).status_code == 200
        r = client.post("/v1/predict", json={"task": "nope", "inputs": [{"text": "x"}]})
        assert r.json()["error"]["tasks"] == ["notes", "triage", "teacher"]
        assert "notes, triage, teacher" in r.json()["error"]["message"]
        r = client.post("/v1/predict", json={"task": "notes", "inputs": [{"text": "a"}] * 3})
        assert r.json()["error"]["limit"] == "max_inputs" and r.json()["error"]["value"] == 2
        r = client.post(
            "/v1/predict", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and "JSON" in r.json()["error"]["message"]
        assert client.post("/v1/predict", json=ok).status_code == 200


def test_queue_depth_and_timeout_limits(lively, bank):
    _, client = _client(lively, bank, limits=Limits(max_queue=1))
    with client:
        r = client.post(
            "/v1/predict", json={"task": "notes", "inputs": [{"text": "a"}, {"text": "b"}]}
        )
        assert r.status_code == 429 and r.json()["error"]["limit"] == "max_queue"
    engine, client = _client(
        lively, bank, limits=Limits(request_timeout_s=0.05), args=EngineArgs(wait_ms=1000)
    )
    with client:
        r = client.post(
            "/v1/predict", json={"task": "notes", "inputs": [{"text": "a"}], "max_new_tokens": 2}
        )
        assert r.status_code == 503 and r.json()["error"]["limit"] == "request_timeout_s"
    assert engine.queue_depth() == 0


def test_bearer_token(lively, bank):
    _, client = _client(lively, bank, api_key=KEY)
    with client:
        assert client.get("/healthz").status_code == 200  # open for probes
        assert client.get("/v1/tasks").status_code == 401
        r = client.get("/v1/tasks", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert client.post("/v1/admin/reload").status_code == 401
        r = client.get("/v1/tasks", headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200


def test_tasks_and_openapi(lively, bank):
    from clinprompt.prompts.bank import TaskEntry

    bank.add_prompt(TaskEntry("mystery", "no_such_type", "prompt"), torch.zeros(4, 64))
    _, client = _client(lively, bank)
    with client:
        tasks = {t["name"]: t for t in client.get("/v1/tasks").json()["tasks"]}
        assert set(tasks) == {"notes", "triage", "teacher", "mystery"}
        assert tasks["triage"]["labels"] == ["urgent", "routine"] and tasks["notes"]["available"]
        assert not tasks["mystery"]["available"] and "no_such_type" in tasks["mystery"]["reason"]
        r = client.post("/v1/predict", json={"task": "mystery", "inputs": [{"text": "x"}]})
        assert r.status_code == 503 and r.json()["error"]["code"] == "task_unavailable"
        schema = client.get("/openapi.json").json()
        assert {"/v1/predict", "/v1/tasks", "/healthz", "/v1/admin/reload"} <= set(schema["paths"])
        assert "PredictRequest" in schema["components"]["schemas"]


def test_waiting_inputs_join_a_running_batch_in_groups(lively, bank):
    """While rows decode, queued inputs join once ``prefill_group`` wait, or after
    ``max_defer_steps`` steps; answers equal each input generated alone."""
    args = EngineArgs(max_batch=8, wait_ms=1, prefill_group=3, max_defer_steps=2)
    engine = ServeEngine(lively, bank.path, Limits(), args)

    def submit(text, n):
        return engine.submit(engine.prepare("notes", [{"text": text}], "generate", n))[0]

    def cycle():
        with torch.inference_mode():
            engine._cycle([])

    texts = ["Aspirin 81 mg daily.", "Warfarin.", "Hb 9.8.", "BP 120/80.", "Metformin."]
    futures = [submit(texts[0], 40)]
    cycle()  # idle: the first input is admitted at once
    assert len(engine._decoding) == 1
    futures += [submit(t, 6) for t in texts[1:3]]
    cycle()  # two wait, fewer than prefill_group: they are deferred
    assert len(engine._decoding) == 1 and engine.queue_depth() == 2
    futures.append(submit(texts[3], 6))
    cycle()  # three wait: they join together
    assert len(engine._decoding) == 4 and engine.queue_depth() == 0
    futures.append(submit(texts[4], 6))
    cycle(), cycle()  # one waits: deferred for max_defer_steps steps ...
    assert engine.queue_depth() == 1
    cycle()  # ... then admitted alone
    assert engine.queue_depth() == 0
    for _ in range(100):
        if all(f.done() for f in futures):
            break
        cycle()
    got = [f.result()["generation"] for f in futures]
    budgets = [40, 6, 6, 6, 6]
    assert got == [
        _direct_generation(lively, bank, "notes", t, n) for t, n in zip(texts, budgets, strict=True)
    ]
