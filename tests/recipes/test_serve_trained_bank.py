"""A bank produced by the training stages is served: concurrent mixed-task requests are all
answered, each with the structured output of its task type."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from clinprompt.config import load_config
from clinprompt.data.registry import get_dataset, load_splits
from clinprompt.data.suite import load_suite
from clinprompt.prompts.bank import PromptBank
from clinprompt.recipes.run import run_experiment
from clinprompt.serve.app import create_app
from clinprompt.serve.engine import EngineArgs, Limits, ServeEngine

ANSWER_FIELDS = {
    "ner": ("entities",),
    "re": ("relations",),
    "qa": ("answer",),
    "nli": ("label",),
    "sum": ("summary",),
}


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("served")
    args = load_config("smoke", [f"output_dir={out}", "adapt.modes=[full]", "baseline.methods=[]"])
    return run_experiment(args, backbone=tiny)


def _inputs(task: str, n: int = 2) -> list[dict]:
    spec = get_dataset(task)
    records = load_splits(task)["test"][:n]
    return [{k: v for k, v in r.items() if k not in ANSWER_FIELDS[spec.task_type]} for r in records]


def _check(task_type: str, spec, inp: dict, out: dict) -> None:
    pred = out["prediction"]
    assert isinstance(out["generation"], str) and isinstance(out["parsed_ok"], bool)
    if task_type == "ner":
        for e in pred["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(inp["text"]) and e["type"] in spec.labels
    elif task_type == "re":
        ids = {e["id"] for e in inp["entities"]}
        assert all(r["head"] in ids and r["tail"] in ids for r in pred["relations"])
    elif task_type == "qa":
        assert pred["answer"] in inp["options"]
    elif task_type == "nli":
        assert pred["label"] in spec.labels
    else:
        assert isinstance(pred["summary"], str)


def test_trained_bank_serves_mixed_concurrent_requests(tiny, trained):
    bank = PromptBank.load(trained.bank, expect=tiny.fingerprint)
    targets = list(load_suite("synthetic").targets)  # one per task type
    assert set(targets) <= set(bank.names())
    engine = ServeEngine(tiny, trained.bank, Limits(), EngineArgs(wait_ms=5))
    client = TestClient(create_app(engine))
    requests = [(t, _inputs(t)) for t in targets for _ in range(2)]
    with client:

        def send(req):
            task, inputs = req
            return (
                task,
                inputs,
                client.post(
                    "/v1/predict", json={"task": task, "inputs": inputs, "max_new_tokens": 12}
                ),
            )

        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            answers = list(pool.map(send, requests))
        tasks = client.get("/v1/tasks").json()
    assert len(answers) == len(requests)
    for task, inputs, response in answers:
        assert response.status_code == 200, response.text
        body = response.json()
        spec = get_dataset(task)
        assert body["task"] == task and body["task_type"] == spec.task_type
        assert len(body["outputs"]) == len(inputs)
        for inp, out in zip(inputs, body["outputs"], strict=True):
            assert out["id"] == inp["id"]
            _check(spec.task_type, spec, inp, out)
    assert set(targets) <= {
        t["name"] for t in (tasks["tasks"] if isinstance(tasks, dict) else tasks)
    }
