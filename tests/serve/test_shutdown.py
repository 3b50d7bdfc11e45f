"""Shutdown drains: new work is refused with 503 shutting_down, /healthz answers "draining",
in-flight inputs finish — or are cut with 503 at the drain timeout — and the server exits."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from clinprompt.serve.app import create_app
from clinprompt.serve.engine import EngineArgs, Limits, ServeEngine
from clinprompt.serve.server import DrainingServer

LONG = {
    "task": "notes",
    "inputs": [{"text": "Warfarin."}],
    "mode": "generate",
    "max_new_tokens": 300,
}
SHORT = {"task": "notes", "inputs": [{"text": "Aspirin."}], "mode": "generate", "max_new_tokens": 4}


def _slow_engine(lively, bank, step_s=0.02):
    """An engine whose worker takes ``step_s`` more per decode step (a larger model, say)."""
    engine = ServeEngine(lively, bank.path, Limits(), EngineArgs(wait_ms=1))
    cycle = engine.scheduler.cycle

    def slow_cycle(taken):
        cycle(taken)
        time.sleep(step_s)

    engine.scheduler.cycle = slow_cycle
    return engine


def _post_in_thread(client, body, out):
    t = threading.Thread(target=lambda: out.append(client.post("/v1/predict", json=body)))
    t.start()
    return t


def _wait_in_flight(engine, n=1):
    deadline = time.monotonic() + 10
    while engine.in_flight() < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.in_flight() >= n


@pytest.mark.parametrize("finishes", [True, False])
def test_drain_refuses_new_work_and_finishes_or_cuts_what_is_in_flight(lively, bank, finishes):
    engine = _slow_engine(lively, bank)
    with TestClient(create_app(engine)) as client:
        out = []
        request = _post_in_thread(client, SHORT if finishes else LONG, out)
        _wait_in_flight(engine)
        drained = {}
        drain = threading.Thread(
            target=lambda: drained.update(engine.drain(5.0 if finishes else 0.3))
        )
        drain.start()
        while not engine.draining:
            time.sleep(0.005)
        health = client.get("/healthz").json()
        assert health["status"] == "draining"
        refused = client.post("/v1/predict", json=SHORT)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
        assert int(refused.headers["retry-after"]) > 0
        drain.join(10)
        request.join(10)
        assert engine.in_flight() == 0
        if finishes:
            assert drained == {"in_flight": 1, "cut": 0} and out[0].status_code == 200
        else:
            assert drained == {"in_flight": 1, "cut": 1}
            assert out[0].status_code == 503 and out[0].json()["error"]["code"] == "shutting_down"
        assert client.get("/healthz").json()["status"] == "draining"  # until the process exits


def _serve_in_thread(engine, drain_timeout_s):
    config = uvicorn.Config(create_app(engine), host="127.0.0.1", port=0, log_level="warning")
    server = DrainingServer(config, engine, drain_timeout_s)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def test_a_signal_drains_the_server_before_it_exits(lively, bank):
    engine = _slow_engine(lively, bank)
    server, thread, url = _serve_in_thread(engine, drain_timeout_s=0.5)
    with httpx.Client(base_url=url, timeout=30) as client:
        # a lone surrogate: 422, and the same connection serves the next request
        bad = b'{"task":"notes","inputs":[{"text":"\\ud800"}]}'
        r = client.post("/v1/predict", content=bad, headers={"content-type": "application/json"})
        assert r.status_code == 422
        assert client.post("/v1/predict", json=SHORT).status_code == 200
        out = []
        request = threading.Thread(
            target=lambda: out.append(httpx.post(f"{url}/v1/predict", json=LONG, timeout=30))
        )
        request.start()
        _wait_in_flight(engine)
        t0 = time.monotonic()
        server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        statuses = set()
        while thread.is_alive() and time.monotonic() - t0 < 10:
            try:
                statuses.add(client.get("/healthz").json()["status"])
                draining = engine.draining  # before sending: one sent earlier may be admitted
                r = client.post("/v1/predict", json=SHORT)
                if draining:
                    assert r.status_code == 503 and r.json()["error"]["code"] == "shutting_down"
            except httpx.TransportError:
                break  # the socket closed: the drain is over
            time.sleep(0.02)
        thread.join(10)
        request.join(10)
    assert not thread.is_alive() and time.monotonic() - t0 < 5  # drain 0.5 s, then exit
    assert "draining" in statuses
    assert out[0].status_code == 503 and out[0].json()["error"]["code"] == "shutting_down"
    assert engine.in_flight() == 0 and not engine.running
