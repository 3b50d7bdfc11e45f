"""The gate before the app: the key is checked before the body is read, a body is refused at its
size or JSON depth before it is parsed, and every refusal — the framework's 404/405 included —
is the documented JSON error with the right headers."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import clinprompt.cli.serve as serve_cli  # importing the module registers the command
from clinprompt.serve.app import create_app
from clinprompt.serve.args import ServeArgs
from clinprompt.serve.engine import EngineArgs, Limits, ServeEngine
from clinprompt.serve.gate import json_depth

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
OK = {"task": "notes", "inputs": [{"text": "ok"}], "max_new_tokens": 2}


def _app(lively, bank, limits=None, **kw):
    engine = ServeEngine(lively, bank.path, limits or Limits(), EngineArgs(wait_ms=1))
    return engine, create_app(engine, **kw)


def _call(app, path, headers, body_chunks, method="POST"):
    """Call the ASGI app directly with an endless (or given) body; count what it reads."""
    reads = 0
    chunks = iter(body_chunks)

    async def receive():
        nonlocal reads
        reads += 1
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body), reads


def _endless(chunk=b"x" * 65536):
    while True:
        yield chunk


def test_the_key_is_checked_before_the_body_is_read(lively, bank):
    _, app = _app(lively, bank, api_key=KEY)
    huge = {"Content-Length": str(300 * 2**20), "Content-Type": "application/json"}
    status, headers, body, reads = _call(app, "/v1/predict", huge, _endless())
    assert (status, body["error"]["code"], reads) == (401, "unauthorized", 0)
    assert headers[b"www-authenticate"] == b"Bearer" and headers[b"x-request-id"]
    # chunked (no Content-Length), wrong key, deep JSON: still 401 and nothing read
    deep = _endless(b"[" * 65536)
    status, _, body, reads = _call(app, "/v1/predict", {"Authorization": "Bearer nope"}, deep)
    assert (status, reads) == (401, 0)
    status, _, _, reads = _call(app, "/docs", {}, [], method="GET")
    assert (status, reads) == (401, 0)


def test_a_body_over_the_limit_is_refused_before_it_is_read_past_it(lively, bank):
    limit = 4096
    _, app = _app(lively, bank, Limits(max_body_bytes=limit), api_key=KEY)
    declared = {**AUTH, "Content-Length": str(20 * 2**20)}
    status, _, body, reads = _call(app, "/v1/predict", declared, _endless())
    assert (status, reads) == (413, 0)
    assert body["error"] == {
        "code": "body_too_large",
        "message": body["error"]["message"],
        "limit": "max_body_bytes",
        "value": limit,
    }
    chunk = b"x" * 1000
    status, _, body, reads = _call(app, "/v1/predict", AUTH, _endless(chunk))  # chunked
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert reads == limit // len(chunk) + 1  # stopped as soon as the count passed the limit


def test_json_depth_is_measured_without_parsing():
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[{{{{", "b": "\\"[[["}') == 1  # brackets in strings do not count
    assert json_depth(b'"\\\\"') == 0 and json_depth(b"[" * 10_000) == 10_000
    assert json_depth(b"") == 0 and json_depth(b"12") == 0


def test_deep_json_is_refused_before_parsing(lively, bank):
    _, app = _app(lively, bank, Limits(max_json_depth=8), api_key=KEY)
    with TestClient(app) as client:
        r = client.post("/v1/predict", content=b"[" * 10_000, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["code"] == "json_too_deep"
        assert r.json()["error"]["limit"] == "max_json_depth"
        r = client.post("/v1/predict", content=b"[" * 10_000)  # no key: 401, not 400 or 422
        assert r.status_code == 401
        nested = {"task": "notes", "inputs": [{"text": "x", "extra": [[[[[[[["deep"]]]]]]]]}]}
        r = client.post("/v1/predict", json=nested, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["code"] == "json_too_deep"
        assert client.post("/v1/predict", json=OK, headers=AUTH).status_code == 200


def test_framework_errors_are_json_too(lively, bank):
    _, app = _app(lively, bank)
    with TestClient(app) as client:
        r = client.get("/nowhere")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = client.get("/v1/predict")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        assert r.headers["allow"] == "POST"
        r = client.post(
            "/v1/predict",
            content=b'{"task": "n\xff"}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
        assert "UTF-8" in r.json()["error"]["message"]  # not UTF-8: the parser gives up
        r = client.post("/v1/predict", content=b"12", headers={"content-length": "x"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
        assert r.headers["x-request-id"]
        r = client.get("/healthz", headers={"X-Request-ID": "probe-7"})
        assert r.headers["x-request-id"] == "probe-7"


def test_docs_are_behind_the_key_unless_public(lively, bank):
    _, app = _app(lively, bank, api_key=KEY)
    with TestClient(app) as client:
        for path in ("/docs", "/openapi.json", "/redoc"):
            r = client.get(path)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", path
        assert client.get("/openapi.json", headers=AUTH).status_code == 200
        assert client.get("/healthz").status_code == 200
    _, app = _app(lively, bank, api_key=KEY, public_docs=True)
    with TestClient(app) as client:
        assert client.get("/docs").status_code == 200
        assert "PredictRequest" in client.get("/openapi.json").json()["components"]["schemas"]
        assert client.get("/v1/tasks").status_code == 401


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_key_is_refused_at_start_up(lively, bank, key):
    with pytest.raises(ValueError, match="API key is empty"):
        _app(lively, bank, api_key=key)
    # the command refuses it before loading anything, instead of warning "without an API key"
    result = CliRunner().invoke(
        serve_cli.app, ["serve", "--bank", str(bank.path), "--api-key", key]
    )
    assert result.exit_code == 1 and "the API key is empty" in result.output
    assert "without an API key" not in result.output


def test_serve_options_reach_the_limits_and_the_gate():
    args = ServeArgs(
        bank="b", max_body_bytes=10, max_json_depth=3, max_options=2, scoring_batch_mb=1.5
    )
    assert args.limits().max_body_bytes == 10 and args.limits().max_json_depth == 3
    assert args.limits().max_options == 2
    assert args.engine_args().scheduling()["scoring_batch_bytes"] == int(1.5 * 2**20)
    assert ServeArgs(bank="b").limits() == Limits()  # the options' defaults are the engine's


def test_retry_after_on_429_and_503(lively, bank):
    _, app = _app(lively, bank, Limits(max_queue=1))
    with TestClient(app) as client:
        r = client.post("/v1/predict", json={"task": "notes", "inputs": [{"text": "a"}] * 2})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
    engine = ServeEngine(
        lively, bank.path, Limits(request_timeout_s=0.05), EngineArgs(wait_ms=1000)
    )
    with TestClient(create_app(engine)) as client:
        r = client.post("/v1/predict", json=OK)
        assert r.status_code == 503 and r.json()["error"]["code"] == "timeout"
        assert r.headers["retry-after"] == "1"
        engine.begin_drain()
        r = client.post("/v1/predict", json=OK)
        assert r.status_code == 503 and r.json()["error"]["code"] == "shutting_down"
        assert int(r.headers["retry-after"]) > 0
        assert client.get("/healthz").json()["status"] == "draining"
