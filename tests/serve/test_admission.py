"""Admission on its own: each limit refuses with its status, code and limit; the queue applies
backpressure, drops items whose request gave up and fails what is left at shutdown."""

from __future__ import annotations

import pytest
import torch

from clinprompt.prompts.bank import TaskEntry
from clinprompt.serve.admission import Admission, Limits, ServeError, WorkRates
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
    # one input per request in turn: a, cancelled, is dropped; then e, then b
    assert [it.record["text"] for it in taken] == ["e", "b"] and admission.depth() == 0
    assert all(it.future.running() for it in taken)
    assert admission.take(8, wait=True, wait_ms=1) == []  # an idle wait ends empty
    queued = admission.submit(admission.prepare(table, "notes", [{"text": "f"}]))
    admission.drain(ServeError(503, "shutting_down", "bye"))
    assert admission.depth() == 0 and admission.waiting() == 0
    assert queued[0].exception(0).code == "shutting_down"
    assert not last[0].done()  # taken items are the scheduler's to answer


def test_work_past_the_timeout_at_the_measured_speed_is_refused_with_retry_after(lively, bank):
    table = _table(bank, lively)
    admission = Admission(lively.tokenizer, Limits(request_timeout_s=10.0))
    (item,) = admission.prepare(table, "notes", [{"text": "a"}], max_new_tokens=50)
    fed, new = item.work()
    assert (fed, new) == (item.task.prompt.shape[0] + len(item.input_ids), 50)
    (scored,) = admission.prepare(table, "triage", [{"text": "a"}])
    assert scored.work() == (
        scored.task.prompt.shape[0] + len(scored.input_ids) + sum(map(len, scored.option_ids)),
        0,
    )
    # 0.05 s a decode step of 4 rows: a 50-token generation is 0.625 s of work, prefill aside
    admission.set_rates(WorkRates(prefill_s=0.0, step_s=0.05, rows=4))
    twelve = [{"text": t} for t in "abcdefghijkl"]  # 7.5 s of work

    def request(inputs):
        return admission.submit(admission.prepare(table, "notes", inputs, max_new_tokens=50))

    big = request(twelve)  # alone: admitted whatever its estimate
    assert admission.open_work_s() == pytest.approx(7.5)
    # shared with the big one, a short request is answered after 0.625 + 0.625 s: admitted
    short = request([{"text": "m"}])
    with pytest.raises(ServeError) as info:  # another big one: 7.5 + 7.5 + 0.625 s > 0.8 x 10 s
        request(twelve)
    err = info.value
    assert (err.status, err.code, err.extra["limit"]) == (429, "queue_full", "request_timeout_s")
    assert err.headers()["Retry-After"] == "8" and "measured speed" in err.message
    assert admission.depth() == 13  # nothing of the refused request was queued
    for f in big[:10] + short:  # most of the work answered: 7.5 + 1.25 s > 8 s still
        f.set_result({})
    assert admission.open_work_s() == pytest.approx(1.25)
    with pytest.raises(ServeError):
        request(twelve)
    big[10].set_result({})  # 7.5 + 0.625 = 8.1 s > 8 s; one more answered and it fits
    with pytest.raises(ServeError):
        request(twelve)
    big[11].set_result({})
    request(twelve)
    assert admission.open_work_s() == pytest.approx(7.5)


def test_requests_take_turns_and_a_take_stays_within_its_token_budget(lively, bank):
    table = _table(bank, lively)
    admission = Admission(lively.tokenizer, Limits())
    big = admission.submit(
        admission.prepare(table, "notes", [{"text": f"big {k}"} for k in range(6)])
    )
    small = admission.submit(admission.prepare(table, "notes", [{"text": "small"}]))
    taken = admission.take(2, wait=False, wait_ms=0)
    assert [it.future for it in taken] == [big[0], small[0]]  # not behind the other 5
    one = len(taken[0].input_ids)
    taken = admission.take(8, wait=False, wait_ms=0, max_tokens=2 * one)
    assert [it.future for it in taken] == big[1:3]  # two inputs' tokens, no more
    taken = admission.take(8, wait=False, wait_ms=0, max_tokens=1)
    assert [it.future for it in taken] == big[3:4]  # at least one input, whatever its size
    late = admission.prepare(table, "notes", [{"text": "late"}])
    rest = admission.submit(late)
    Admission.give_up(late)  # its request timed out while it waited
    taken = admission.take(8, wait=False, wait_ms=0)
    assert [it.future for it in taken] == big[4:6]  # the given-up input is dropped, answered 503
    assert rest[0].exception(0).code == "timeout" and admission.depth() == 0
