"""The server with the real task types: each answers with the structured fields of its type
(entities with offsets, relation triples, label, option key, summary), and serves each task with
the spec its bank entry stores (no dataset registry)."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from tests.serve.conftest import P

from clinprompt.data.registry import UnknownDatasetError, get_dataset
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.serve.app import create_app
from clinprompt.serve.engine import EngineArgs, ServeEngine
from clinprompt.tasks.spec import TaskSpec

NLI = ["entailment", "neutral", "contradiction"]
TEXT = "Started metformin 500 mg for type 2 diabetes."
INPUTS = {
    "ner_task": {"text": TEXT},
    "re_task": {
        "text": "Severe hepatotoxicity developed after ketoconazole.",
        "entities": [
            {"id": "T1", "start": 7, "end": 21, "type": "AdverseEffect"},
            {"id": "T2", "start": 38, "end": 50, "type": "Drug"},
        ],
    },
    "qa_task": {
        "question": "First-line drug for type 2 diabetes?",
        "options": {"A": "Metformin", "B": "Insulin"},
    },
    "nli_task": {
        "premise": "The patient denies chest pain.",
        "hypothesis": "The patient has chest pain.",
    },
    "sum_task": {"source": "FINDINGS: No acute cardiopulmonary process."},
}


@pytest.fixture()
def typed_bank(tmp_path, lively):
    d = lively.hidden_size
    bank = PromptBank.create(tmp_path / "typed", lively.fingerprint, P)
    labels = {"ner": ["Drug", "Problem"], "re": ["causes"], "nli": NLI, "qa": [], "sum": []}
    for i, (ttype, lab) in enumerate(labels.items()):
        bank.add_prompt(
            TaskEntry(f"{ttype}_task", ttype, "prompt", labels=lab),
            torch.randn(P, d, generator=torch.Generator().manual_seed(i)),
        )
    return bank


def test_every_task_type_answers_with_its_fields(lively, typed_bank):
    engine = ServeEngine(lively, typed_bank.path, args=EngineArgs(wait_ms=1))
    with TestClient(create_app(engine)) as client:
        tasks = {t["name"]: t for t in client.get("/v1/tasks").json()["tasks"]}
        assert tasks["nli_task"]["input_fields"] == {
            "premise": "string (required)",
            "hypothesis": "string (required)",
        }
        out = {}
        for task, record in INPUTS.items():
            r = client.post(
                "/v1/predict", json={"task": task, "inputs": [record], "max_new_tokens": 8}
            )
            assert r.status_code == 200, r.text
            out[task] = r.json()["outputs"][0]
    assert isinstance(out["ner_task"]["prediction"]["entities"], list)
    assert isinstance(out["re_task"]["prediction"]["relations"], list)
    assert "entities" not in out["re_task"]["prediction"]  # given entities are not echoed back
    assert out["qa_task"]["mode"] == "score" and out["qa_task"]["prediction"]["answer"] in (
        "A",
        "B",
    )
    assert out["nli_task"]["mode"] == "score" and out["nli_task"]["prediction"]["label"] in NLI
    assert set(out["nli_task"]["scores"]) == set(NLI)
    assert isinstance(out["sum_task"]["prediction"]["summary"], str)


def test_structured_output_has_offsets(lively, typed_bank):
    engine = ServeEngine(lively, typed_bank.path)
    ner = engine.task("ner_task")
    record = ner.check_input(0, {"text": TEXT})
    prediction, ok = ner.structure("Drug: metformin | Problem: type 2 diabetes", record)
    assert ok and prediction["id"] == "0" and "text" not in prediction
    spans = {(e["start"], e["end"], e["type"]) for e in prediction["entities"]}
    assert spans == {(8, 17, "Drug"), (29, 44, "Problem")}
    re_task = engine.task("re_task")
    record = re_task.check_input(0, INPUTS["re_task"])
    example = re_task.example(0, record)
    assert "ketoconazole" in example.input
    _, ok = re_task.structure("garbage that is no triple", record)
    assert ok is False


def test_missing_input_fields_name_the_field(lively, typed_bank):
    engine = ServeEngine(lively, typed_bank.path, args=EngineArgs(wait_ms=1))
    with TestClient(create_app(engine)) as client:
        r = client.post("/v1/predict", json={"task": "nli_task", "inputs": [{"premise": "x"}]})
        assert r.status_code == 422 and "'hypothesis' is required" in r.json()["error"]["message"]
        r = client.post("/v1/predict", json={"task": "ner_task", "inputs": [{"text": 5}]})
        assert r.status_code == 422 and "'text' must be a string" in r.json()["error"]["message"]


JOINT_RE = TaskSpec(
    name="my_private_joint_re",  # a user config that is not registered where the server runs
    task_type="re",
    labels=("causes",),
    instruction="List the drugs, the adverse effects and which drug causes which.",
    joint=True,
    entity_types=("Drug", "AdverseEffect"),
)


@pytest.fixture()
def joint_bank(tmp_path, lively):
    bank = PromptBank.create(tmp_path / "joint", lively.fingerprint, P)
    bank.add_prompt(
        TaskEntry("ade_joint", "re", "prompt", dataset=JOINT_RE.name, spec=JOINT_RE),
        torch.randn(P, lively.hidden_size, generator=torch.Generator().manual_seed(7)),
    )
    return bank


def test_joint_re_of_an_unregistered_dataset_is_served_as_joint(lively, joint_bank):
    with pytest.raises(UnknownDatasetError):
        get_dataset(JOINT_RE.name)
    engine = ServeEngine(lively, joint_bank.path, args=EngineArgs(wait_ms=1))
    with TestClient(create_app(engine)) as client:
        tasks = {t["name"]: t for t in client.get("/v1/tasks").json()["tasks"]}
        assert tasks["ade_joint"]["input_fields"] == {
            "text": "string (required)",
            "entities": "array (optional)",
        }
        assert tasks["ade_joint"]["instruction"] == JOINT_RE.instruction
        r = client.post(
            "/v1/predict",
            json={
                "task": "ade_joint",
                "inputs": [{"text": "Severe hepatotoxicity developed after ketoconazole."}],
                "max_new_tokens": 8,
            },
        )
    assert r.status_code == 200, r.text
    # A joint task extracts the entities itself: they come back with the relations.
    prediction = r.json()["outputs"][0]["prediction"]
    assert isinstance(prediction["entities"], list) and isinstance(prediction["relations"], list)
    runtime = engine.task("ade_joint")
    record = runtime.check_input(0, {"text": "Rash after aspirin."})
    assert runtime.example(0, record).input == "Rash after aspirin."  # no entity list: joint
    out, ok = runtime.structure(
        "AdverseEffect: Rash | Drug: aspirin\nRelations: aspirin [causes] Rash", record
    )
    assert ok and {(e["type"], e["text"]) for e in out["entities"]} == {
        ("AdverseEffect", "Rash"),
        ("Drug", "aspirin"),
    }
    assert [r["type"] for r in out["relations"]] == ["causes"]


def test_bank_save_load_serve_keeps_the_spec(lively, joint_bank, typed_bank):
    saved = PromptBank.load(joint_bank.path).entry("ade_joint").spec
    assert saved == JOINT_RE
    engine = ServeEngine(lively, joint_bank.path)
    assert engine.task("ade_joint").spec == saved
    typed = ServeEngine(lively, typed_bank.path)
    for name, entry in PromptBank.load(typed_bank.path).tasks.items():
        assert typed.task(name).spec == entry.spec
