"""Structured logs: one JSON line per record with a timestamp, the level and the event's fields —
every request (id, task, status, latency), every reload (a successful one too) and failures
(naming the file)."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.testclient import TestClient

from clinprompt.serve.app import create_app
from clinprompt.serve.engine import EngineArgs, ServeEngine
from clinprompt.serve.logs import LOGGER, JsonLogFormatter, configure_logging, log_event

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _lines(caplog, event):
    fmt = JsonLogFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records if getattr(r, "event", None) == event]


@pytest.fixture()
def engine(lively, bank):
    return ServeEngine(lively, bank.path, args=EngineArgs(wait_ms=1))


@pytest.fixture()
def client(engine):
    with TestClient(create_app(engine)) as c:
        yield c


def test_every_request_is_one_json_line(client, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        ok = client.post(
            "/v1/predict",
            json={"task": "notes", "inputs": [{"text": "ok"}], "max_new_tokens": 2},
            headers={"X-Request-ID": "req-1"},
        )
        missing = client.post("/v1/predict", json={"task": "nope", "inputs": [{"text": "x"}]})
    assert ok.status_code == 200 and missing.status_code == 404
    first, second = _lines(caplog, "request")
    assert TS.fullmatch(first["ts"]) and first["level"] == "INFO"
    assert first["request_id"] == "req-1" and first["task"] == "notes" and first["inputs"] == 1
    assert first["status"] == 200 and first["method"] == "POST" and first["path"] == "/v1/predict"
    assert isinstance(first["latency_ms"], float) and first["latency_ms"] > 0
    assert second["status"] == 404 and second["code"] == "unknown_task" and second["task"] == "nope"
    assert second["request_id"] == missing.headers["x-request-id"] != "req-1"


def test_reloads_are_logged_whether_they_succeed_or_fail(client, bank, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert client.post("/v1/admin/reload").status_code == 200
        (bank.path / "bank.json").write_text("{broken")
        r = client.post("/v1/admin/reload")
    assert r.status_code == 422 and r.json()["error"]["code"] == "reload_failed"
    assert "bank.json" in r.json()["error"]["message"]  # the failing file is named
    (done,) = _lines(caplog, "reload")
    assert done["level"] == "INFO" and done["trigger"] == "api" and done["version"] == 1
    assert done["tasks"] == ["notes", "triage", "teacher"] and done["added"] == []
    (failed,) = _lines(caplog, "reload_failed")
    assert failed["level"] == "WARNING" and TS.fullmatch(failed["ts"])
    assert failed["file"] == str(bank.path / "bank.json") and "invalid JSON" in failed["error"]


def test_a_failing_batch_is_logged_with_its_tasks(engine, client, monkeypatch, caplog):
    def boom(*_, **__):
        yield
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine.scheduler, "_score_passes", boom)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        r = client.post("/v1/predict", json={"task": "triage", "inputs": [{"text": "Fever."}]})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    (failed,) = _lines(caplog, "batch_failed")
    assert failed["level"] == "ERROR" and failed["tasks"] == ["triage"] and failed["inputs"] == 1
    assert "out of memory" in failed["message"] and "Traceback" in failed["exception"]
    (line,) = [x for x in _lines(caplog, "request") if x["status"] == 500]
    assert line["level"] == "ERROR" and line["code"] == "internal_error"


def test_configured_logging_writes_json_lines(capsys):
    configure_logging("info")
    configure_logging("info")  # once: no second handler
    try:
        log_event(logging.INFO, "request", "GET /v1/tasks 200", status=200, text="caf\u00e9 \ud800")
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        line = json.loads(err[0])
        assert line["event"] == "request" and line["status"] == 200 and line["level"] == "INFO"
        assert TS.fullmatch(line["ts"]) and err[0].isascii()
    finally:
        logger = logging.getLogger(LOGGER)
        for h in list(logger.handlers):
            if isinstance(h.formatter, JsonLogFormatter):
                logger.removeHandler(h)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
