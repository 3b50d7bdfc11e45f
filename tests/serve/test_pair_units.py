"""Serving a pair-given RE task: an input record is asked one question per ordered entity pair,
the pairs are scored (or generated) together, and the answer is their merged relations."""

from __future__ import annotations

import pytest
import torch
from tests.serve.conftest import P

from clinprompt.data.collate import encode_prompt
from clinprompt.decoding import encode_options, option_logprobs
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.serve.engine import EngineArgs, ServeEngine
from clinprompt.serve.scheduler import Scheduler
from clinprompt.tasks import get_task_type
from clinprompt.tasks.spec import TaskSpec

RE = get_task_type("re")
# One-token labels, so that a random prompt answers differently for different pairs.
SPEC = TaskSpec(name="pairs", task_type="re", labels=("dose", "causes"))
TEXT = "Severe rash developed after amoxicillin 500 mg."


def ent(eid: str, mention: str, etype: str) -> dict:
    start = TEXT.index(mention)
    return {"id": eid, "start": start, "end": start + len(mention), "type": etype}


THREE = {
    "id": "r3",
    "text": TEXT,
    "entities": [
        ent("T1", "rash", "AE"),
        ent("T2", "amoxicillin", "Drug"),
        ent("T3", "500 mg", "Dose"),
    ],
}
EMPTY = {"id": "r0", "text": "Vitals stable.", "entities": []}


@pytest.fixture()
def engine(tmp_path, lively):
    bank = PromptBank.create(tmp_path / "bank", lively.fingerprint, P)
    prompt = torch.randn(P, lively.hidden_size, generator=torch.Generator().manual_seed(4))
    bank.add_prompt(TaskEntry("pairs", "re", "prompt", labels=list(SPEC.labels)), prompt)
    eng = ServeEngine(lively, bank.path, args=EngineArgs(wait_ms=1))
    yield eng
    eng.stop()


@pytest.fixture()
def rows(monkeypatch):
    """The rows the scheduler scores and generates, as (mode, record)."""
    seen: list[tuple[str, dict]] = []
    score, generate = Scheduler.score, Scheduler.generate

    def spy_score(self, items):
        seen.extend(("score", it.record) for it in items)
        return score(self, items)

    def spy_generate(self, items):
        seen.extend(("generate", it.record) for it in items)
        return generate(self, items)

    monkeypatch.setattr(Scheduler, "score", spy_score)
    monkeypatch.setattr(Scheduler, "generate", spy_generate)
    return seen


def triples(relations: list[dict]) -> set[tuple[str, str, str]]:
    return {(r["head"], r["tail"], r["type"]) for r in relations}


def test_a_three_entity_input_is_answered_by_its_six_pairs(engine, lively, rows):
    out = engine.predict("pairs", [THREE, EMPTY])
    assert [o["id"] for o in out] == ["r3", "r0"]
    three, empty = out
    # six ordered pairs scored together; the empty record never reaches the model
    assert [(mode, r["pair"]["head"], r["pair"]["tail"]) for mode, r in rows] == [
        ("score", h, t) for h in ("T1", "T2", "T3") for t in ("T1", "T2", "T3") if h != t
    ]
    assert three["mode"] == "score" and three["parsed_ok"] and three["generated_tokens"] == 0
    # the answer is the merge of each pair scored on its own
    tok, table = lively.tokenizer, engine.table.tasks["pairs"]
    record = {**THREE, "id": "r3"}
    expected = set()
    for unit in RE.units(record, SPEC):
        cands = RE.candidates(unit, SPEC)
        scores = option_logprobs(
            lively.model,
            table.prompt.unsqueeze(0),
            [encode_prompt(tok, RE.example(unit, SPEC))],
            [encode_options(tok, cands)],
            pad_token_id=tok.pad_token_id,
        )[0]
        best = cands[max(range(len(cands)), key=scores.__getitem__)]
        expected |= triples(RE.parse(best, unit, SPEC).prediction["relations"])
    assert triples(three["prediction"]["relations"]) == expected
    # not one answer for every pair: both labels, and none for some pairs
    assert {t for _, _, t in expected} == {"dose", "causes"} and len(expected) < 6
    assert "entities" not in three["prediction"] and "pair" not in three["prediction"]
    # the generation field is the record's triples, which the record parser reads back
    back = RE.parse(three["generation"], record, SPEC)
    assert back.ok and triples(back.prediction["relations"]) == expected
    assert empty["prediction"] == {"id": "r0", "relations": []} and empty["parsed_ok"]
    assert empty["generation"] == "none"


def test_generate_mode_generates_the_pairs(engine, rows):
    (out,) = engine.predict("pairs", [THREE], mode="generate", max_new_tokens=3)
    assert len(rows) == 6 and {mode for mode, _ in rows} == {"generate"}
    assert out["mode"] == "generate" and 0 < out["generated_tokens"] <= 18
    assert isinstance(out["prediction"]["relations"], list)


def test_a_record_with_many_entities_is_refused_before_any_row_is_built(engine, rows):
    """n entities make n(n-1) pair rows: they count against max_scoring_tokens at admission."""
    from clinprompt.serve.admission import ServeError

    words = [f"drug{i}" for i in range(60)]
    text = " ".join(words)
    ents, start = [], 0
    for i, w in enumerate(words):
        ents.append({"id": f"T{i}", "start": start, "end": start + len(w), "type": "Drug"})
        start += len(w) + 1
    with pytest.raises(ServeError) as err:
        engine.predict("pairs", [{"id": "big", "text": text, "entities": ents}])
    assert err.value.status == 413 and err.value.code == "scoring_too_large"
    assert "per entity pair" in err.value.message
    assert rows == []  # refused at admission: the worker never saw a row
    # a record of a few entities is well within the budget
    assert engine.predict("pairs", [THREE])[0]["id"] == "r3"


def test_a_bank_recording_the_resolved_instruction_serves_training_s_prompt_head(tmp_path, lively):
    """The recipes write ``instruction=RE.instruction(spec)`` into the bank; the server must
    format requests with the head training used, not that text with the question added again."""
    bank = PromptBank.create(tmp_path / "bank", lively.fingerprint, P)
    prompt = torch.randn(P, lively.hidden_size, generator=torch.Generator().manual_seed(4))
    entry = TaskEntry("pairs", "re", "prompt", instruction=RE.instruction(SPEC), spec=SPEC)
    bank.add_prompt(entry, prompt)
    eng = ServeEngine(lively, bank.path, args=EngineArgs(wait_ms=1))
    try:
        runtime = eng.table.tasks["pairs"]
        unit = RE.units({**THREE, "id": "r3"}, SPEC)[0]
        assert runtime.example(0, unit).prompt_head == RE.example(unit, SPEC).prompt_head
    finally:
        eng.stop()
