"""Hot reload: new tasks become available, queued requests finish with the prompt they were
admitted with, and a broken bank leaves the server on its previous tasks."""

from __future__ import annotations

import time

import torch
from fastapi.testclient import TestClient

from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.serve.app import create_app
from clinprompt.serve.engine import EngineArgs, ServeEngine


def test_reload_endpoint_adds_a_task(lively, bank):
    engine = ServeEngine(lively, bank.path, args=EngineArgs(wait_ms=1))
    with TestClient(create_app(engine)) as client:
        assert (
            client.post("/v1/predict", json={"task": "late", "inputs": [{"text": "x"}]}).status_code
            == 404
        )
        bank.add_prompt(TaskEntry("late", "echo", "prompt"), torch.randn(4, 64))
        r = client.post("/v1/admin/reload")
        assert r.status_code == 200 and r.json()["added"] == ["late"] and r.json()["removed"] == []
        assert "late" in [t["name"] for t in client.get("/v1/tasks").json()["tasks"]]
        r = client.post(
            "/v1/predict", json={"task": "late", "inputs": [{"text": "x"}], "max_new_tokens": 3}
        )
        assert r.status_code == 200
        bank.add_prompt(TaskEntry("late", "echo", "prompt"), torch.randn(4, 64), replace=True)
        assert client.post("/v1/admin/reload").json()["changed"] == ["late"]
        assert client.get("/healthz").json()["bank_version"] == 2


def test_queued_requests_survive_a_reload(lively, bank):
    engine = ServeEngine(lively, bank.path)  # worker not started: the items stay queued
    items = engine.prepare("teacher", [{"text": "Aspirin 81 mg."}], max_new_tokens=4)
    futures = engine.submit(items)
    reference = ServeEngine(lively, bank.path)
    expected = reference.predict("teacher", [{"text": "Aspirin 81 mg."}], max_new_tokens=4)
    reference.stop()
    PromptBank.load(bank.path).remove("teacher")
    assert engine.reload()["removed"] == ["teacher"]
    engine.start()
    try:
        assert futures[0].result(timeout=30)["generation"] == expected[0]["generation"]
    finally:
        engine.stop()


def test_watcher_picks_up_a_new_task_and_survives_a_broken_bank(lively, bank):
    engine = ServeEngine(lively, bank.path, args=EngineArgs(watch_interval_s=0.05)).start()
    try:
        bank.add_prompt(TaskEntry("watched", "echo", "prompt"), torch.randn(4, 64))
        deadline = time.monotonic() + 10
        while "watched" not in engine.table.tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "watched" in engine.table.tasks
        (bank.path / "bank.json").write_text("{broken")
        time.sleep(0.3)
        assert "watched" in engine.table.tasks  # still serving the last good table
        assert engine.predict("watched", [{"text": "x"}], max_new_tokens=2)[0]["mode"] == "generate"
    finally:
        engine.stop()
