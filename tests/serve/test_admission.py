"""Admission on its own: each limit refuses with its status, code and limit; the queue applies
backpressure, drops items whose request gave up and fails what is left at shutdown."""

from __future__ import annotations

import pytest
import torch

from clinprompt.prompts.bank import TaskEntry
from clinprompt.serve.admission import Admission, Limits, ServeError
from clinprompt.serve.runtime import load_task_table


def _table(bank, lively):
    return load_task_table(bank, lively.tokenizer, torch.device("cpu"), torch.float32)


def _refusal(admission, table, task, inputs, mode="auto", max_new_tokens=None) -> ServeError:
    with pytest.raises(ServeError) as info:
        admission.prepare(table, task, inputs, mode, max_new_tokens)
    return info.value


def test_each_limit_refuses_with_its_status_and_code(lively, bank):
    bank.add_prompt(TaskEntry("mystery", "no_such_type", "prompt"), torch.zeros(4, 64))
    table = _table(bank, lively)
    lim = Limits(max_input_tokens=8, max_inputs=2, max_new_tokens=16)
    admission = Admission(lively.tokenizer, lim)
    cases = [
        (("nope", [{"text": "x"}]), {}, 404, "unknown_task"),
        (("notes", []), {}, 422, "empty_inputs"),
        (("notes", [{"text": "a"}] * 3), {}, 422, "too_many_inputs"),
        (("notes", [{"text": "x"}]), {"max_new_tokens": 17}, 422, "max_new_tokens"),
        (("notes", [{"text": "x"}]), {"max_new_tokens": 0}, 422, "max_new_tokens"),
        (("notes", [{"text": "ok"}, {"text": "word " * 50}]), {}, 413, "input_too_long"),
        (("notes", [{"text": "ok"}, {"txt": "x"}]), {}, 422, "invalid_input"),
        (("notes", [{"text": "x"}]), {"mode": "score"}, 422, "not_scorable"),
        (("notes", [{"text": "x"}]), {"mode": "fast"}, 422, "invalid_mode"),
        (("mystery", [{"text": "x"}]), {}, 503, "task_unavailable"),
    ]
    for (task, inputs), kw, status, code in cases:
        err = _refusal(admission, table, task, inputs, **kw)
        assert (err.status, err.code) == (status, code), (task, inputs, kw, err.to_dict())
    assert _refusal(admission, table, "nope", [{"text": "x"}]).extra["tasks"] == [
        "notes",
        "triage",
        "teacher",
        "mystery",
    ]
    err = _refusal(admission, table, "notes", [{"text": "a"}] * 3)
    assert err.extra == {"limit": "max_inputs", "value": 2}
    err = _refusal(admission, table, "notes", [{"text": "x"}], max_new_tokens=17)
    assert err.extra == {"limit": "max_new_tokens", "value": 16}
    err = _refusal(admission, table, "notes", [{"text": "ok"}, {"text": "word " * 50}])
    assert err.extra == {"limit": "max_input_tokens", "value": 8, "index": 1}
    assert _refusal(admission, table, "notes", [{"text": "ok"}, {"txt": "x"}]).extra == {"index": 1}
    assert admission.depth() == 0 and admission.requests == 0  # nothing was queued


def test_items_are_built_from_the_table_given(lively, bank):
    table = _table(bank, lively)
    admission = Admission(lively.tokenizer, Limits())
    items = admission.prepare(table, "triage", [{"text": "Fever."}, {"id": "b", "text": "x"}])
    assert [it.record["id"] for it in items] == ["0", "b"]
    assert all(it.task is table.tasks["triage"] for it in items)
    assert items[0].candidates == ["urgent", "routine"]  # auto: scored
    assert items[0].max_new_tokens == table.tasks["triage"].max_new_tokens()
    generated = admission.prepare(table, "triage", [{"text": "x"}], "generate", 5)
    assert generated[0].candidates is None and generated[0].max_new_tokens == 5
    no_scoring = Admission(lively.tokenizer, Limits(), scoring=False)  # the vLLM engine
    assert no_scoring.prepare(table, "triage", [{"text": "x"}])[0].candidates is None
    with pytest.raises(ServeError) as info:
        no_scoring.prepare(table, "triage", [{"text": "x"}], "score")
    assert info.value.code == "not_scorable"
    smaller = type(table)({"notes": table.tasks["notes"]}, table.prompt_tokens, table.version)
    with pytest.raises(ServeError) as info:
        admission.prepare(smaller, "triage", [{"text": "x"}])
    assert info.value.status == 404 and info.value.extra["tasks"] == ["notes"]


def test_queue_backpressure_take_and_drain(lively, bank):
    table = _table(bank, lively)
    admission = Admission(lively.tokenizer, Limits(max_queue=3))
    first = admission.submit(admission.prepare(table, "notes", [{"text": "a"}, {"text": "b"}]))
    assert admission.depth() == 2 and admission.waiting() == 2
    with pytest.raises(ServeError) as info:
        admission.submit(admission.prepare(table, "notes", [{"text": "c"}, {"text": "d"}]))
    err = info.value
    assert (err.status, err.code, err.extra) == (
        429,
        "queue_full",
        {"limit": "max_queue", "value": 3},
    )
    assert admission.depth() == 2 and (admission.requests, admission.items) == (1, 2)
    last = admission.submit(admission.prepare(table, "notes", [{"text": "e"}]))
    first[0].cancel()  # its request timed out: the worker never runs it
    taken = admission.take(8, wait=False, wait_ms=0)
    assert [it.record["text"] for it in taken] == ["b", "e"] and admission.depth() == 0
    assert all(it.future.running() for it in taken)
    assert admission.take(8, wait=True, wait_ms=1) == []  # an idle wait ends empty
    queued = admission.submit(admission.prepare(table, "notes", [{"text": "f"}]))
    admission.drain(ServeError(503, "shutting_down", "bye"))
    assert admission.depth() == 0 and admission.waiting() == 0
    assert queued[0].exception(0).code == "shutting_down"
    assert not last[0].done()  # taken items are the scheduler's to answer
