"""The scheduler on its own, stepped by hand or on its thread: short scoring inputs are answered on
arrival while generation rows join the running batch; long jobs run a pass at a time and never
hold a short request; requests take turns; work of a request that gave up is dropped; a failing
batch fails only its rows, and abandoning the batch fails what is left."""

from __future__ import annotations

import threading

import pytest
import torch

from clinprompt.decoding import PromptKVCache
from clinprompt.serve.admission import Admission, Limits, ServeError
from clinprompt.serve.scheduler import Scheduler
from clinprompt.serve.watcher import BankWatcher


def _parts(lively, bank, max_batch=8, **options):
    cache = PromptKVCache(lively.model)
    table = BankWatcher(bank.path, lively, cache).table
    admission = Admission(lively.tokenizer, Limits())
    scheduler = Scheduler(
        lively,
        cache,
        admission,
        max_batch=max_batch,
        wait_ms=1,
        prefill_group=1,
        max_defer_steps=0,
        length_normalize=False,
        **options,
    )
    return table, admission, scheduler


def _cycle(scheduler, taken=None):
    with torch.inference_mode():
        scheduler.cycle([] if taken is None else taken)


def test_scores_on_arrival_and_generates_as_the_static_batch(lively, bank):
    table, admission, scheduler = _parts(lively, bank)
    requests = [("notes", "Warfarin.", 6), ("triage", "Chest pain.", None), ("teacher", "Hb.", 4)]
    futures = [
        admission.submit(admission.prepare(table, task, [{"text": text}], max_new_tokens=n))[0]
        for task, text, n in requests
    ]
    _cycle(scheduler)  # one admission: the scoring input is answered, two rows decode
    assert scheduler.batches == 1 and admission.depth() == 0
    assert futures[1].done() and futures[1].result()["mode"] == "score"
    assert len(scheduler.decoding) == 2 and not futures[0].done()
    for _ in range(10):
        _cycle(scheduler)
    assert all(f.done() for f in futures) and not scheduler.decoding
    assert scheduler.batches == 1
    static = [
        it
        for task, text, n in requests
        for it in admission.prepare(table, task, [{"text": text}], max_new_tokens=n)
    ]
    scheduler.run_batch(static)
    for got, expected in zip(futures, static, strict=True):
        want = expected.future.result(0)
        assert got.result()["generation"] == want["generation"]
        assert got.result()["generated_tokens"] == want["generated_tokens"]
        if want["scores"]:
            assert got.result()["scores"] == pytest.approx(want["scores"], abs=1e-4)


def test_a_failing_batch_fails_its_rows_and_the_worker_keeps_serving(lively, bank):
    table, admission, scheduler = _parts(lively, bank)
    passes = scheduler._score_passes
    calls = []

    def flaky(items):
        calls.append(len(items))
        if len(calls) == 1:

            def failing():
                yield  # a first pass runs, the second fails
                raise RuntimeError("boom")

            return failing()
        return passes(items)

    scheduler._score_passes = flaky
    stop = threading.Event()
    worker = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    worker.start()
    try:
        failed = admission.submit(admission.prepare(table, "triage", [{"text": "x"}]))[0]
        err = failed.exception(timeout=30)
        assert isinstance(err, ServeError) and (err.status, err.code) == (500, "internal_error")
        assert "boom" in err.message
        answered = admission.submit(admission.prepare(table, "triage", [{"text": "x"}]))[0]
        assert answered.result(timeout=30)["mode"] == "score"
        generated = admission.submit(
            admission.prepare(table, "notes", [{"text": "x"}], max_new_tokens=3)
        )[0]
        assert generated.result(timeout=30)["mode"] == "generate"
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive() and calls == [1, 1]


def test_abandon_fails_the_rows_still_decoding(lively, bank):
    table, admission, scheduler = _parts(lively, bank)
    futures = admission.submit(
        admission.prepare(table, "notes", [{"text": "a"}, {"text": "b"}], max_new_tokens=50)
    )
    _cycle(scheduler)
    assert len(scheduler.decoding) == 2
    scheduler.abandon(ServeError(503, "shutting_down", "bye"))
    assert [f.exception(0).code for f in futures] == ["shutting_down"] * 2
    assert not scheduler.decoding


def _fed(items) -> int:
    """Input and candidate tokens of ``items`` (what a cycle's budget counts)."""
    return sum(it.work()[0] - it.task.prompt.shape[0] for it in items)


def test_a_long_job_runs_a_pass_at_a_time_and_never_blocks_a_short_request(lively, bank):
    table, admission, _ = _parts(lively, bank)
    scored_items = admission.prepare(table, "triage", [{"text": "Pain."}])
    short_items = admission.prepare(table, "notes", [{"text": "x"}], max_new_tokens=6)
    # a budget the short request fits and the scoring input (with its candidates) does not;
    # one byte of scoring memory makes every candidate a pass of its own
    budget = len(scored_items[0].input_ids) + 1  # its prefill is one pass, with candidates not
    assert _fed(short_items) <= budget < _fed(scored_items)
    _, admission, scheduler = _parts(
        lively, bank, prefill_tokens=budget, scoring_batch_bytes=1, long_pass_every=3
    )
    passes_of = scheduler._score_passes
    ran: list[str] = []  # "pass" per pass of the scoring job, "step" per cycle after the first

    def counted(items):
        gen = passes_of(items)
        try:
            while True:
                next(gen)
                ran.append("pass")
                yield
        except StopIteration as done:
            return done.value

    scheduler._score_passes = counted
    (scored,) = admission.submit(scored_items)
    _cycle(scheduler)  # a long job; no row decoding, so its first pass (the prefill) runs
    assert ran == ["pass"] and len(scheduler.jobs) == 1
    (short,) = admission.submit(short_items)
    while not short.done():
        _cycle(scheduler)
        ran.append("step")
    # taken at once; the job runs a pass after every third decode step, or once no row is left
    expected, steps = ["pass"], ran.count("step")
    for k in range(1, steps + 1):
        expected += ["pass", "step"] if k % 3 == 0 or k == steps else ["step"]
    assert ran == expected and not scored.done() and steps <= 6
    for _ in range(5):
        _cycle(scheduler)
    assert scored.done() and set(scored.result()["scores"]) == {"urgent", "routine"}
    assert ran.count("pass") == 3 and not scheduler.jobs  # prefill + one per candidate


def test_a_cycle_takes_one_request_at_a_time_within_its_token_budget(lively, bank):
    table, admission, _ = _parts(lively, bank)
    texts = [{"text": t} for t in ("a", "b", "c")]
    one = len(admission.prepare(table, "notes", texts[:1])[0].input_ids)
    _, admission, scheduler = _parts(lively, bank, prefill_tokens=one)
    joined: list[int] = []  # rows of each join into the running batch
    join = scheduler.decoding.join

    def counted(logits, *args, **kwargs):
        joined.append(logits.shape[0])
        return join(logits, *args, **kwargs)

    scheduler.decoding.join = counted
    generated = admission.submit(admission.prepare(table, "notes", texts, max_new_tokens=8))
    scored = admission.submit(admission.prepare(table, "triage", texts))
    _cycle(scheduler)  # one input, the first request's
    assert joined == [1] and admission.depth() == 5
    _cycle(scheduler)  # then the other request's turn
    assert joined == [1] and admission.depth() == 4
    for _ in range(300):
        if all(f.done() for f in generated + scored):
            break
        _cycle(scheduler)
    assert joined == [1, 1, 1] and admission.depth() == 0
    assert all(f.done() for f in generated + scored) and not scheduler.held
    assert {f.result()["mode"] for f in scored} == {"score"}


def test_work_of_a_request_that_gave_up_is_dropped(lively, bank):
    table, admission, _ = _parts(lively, bank)
    rows = admission.prepare(table, "notes", [{"text": "a"}, {"text": "b"}], max_new_tokens=50)
    job = admission.prepare(table, "triage", [{"text": "c"}])
    budget = max(len(rows[0].input_ids), len(job[0].input_ids)) + 1  # one input a cycle
    assert _fed(job) > budget  # with its candidates: a long job
    _, admission, scheduler = _parts(lively, bank, prefill_tokens=budget, long_pass_every=100)
    futures = admission.submit(rows)
    admission.submit(job)
    for _ in range(3):  # a joins; c waits as a long job while rows decode; b joins
        _cycle(scheduler)
    assert len(scheduler.decoding) == 2 and len(scheduler.jobs) == 1
    admission.give_up(rows[:1] + job)  # the app does this when a request times out
    _cycle(scheduler)
    assert len(scheduler.decoding) == 1 and not scheduler.jobs
    assert (
        futures[0].exception(0).code == "timeout" and job[0].future.exception(0).code == "timeout"
    )
    assert not futures[1].done()


def test_calibration_and_traffic_give_admission_the_measured_speed(lively, bank):
    table, admission, scheduler = _parts(lively, bank, max_batch=2)
    assert admission.rates is None
    with torch.inference_mode():
        rates = scheduler.calibrate()
    assert rates.prefill_s > 0 and rates.step_s > 0 and rates.rows == 2
    assert admission.rates == rates
    admission.submit(
        admission.prepare(table, "notes", [{"text": "a"}, {"text": "b"}], max_new_tokens=4)
    )
    before = scheduler.step_s
    _cycle(scheduler)  # a prefill and a full step: both averages move
    assert scheduler.step_s != before and admission.rates.step_s == scheduler.step_s


def test_a_long_requests_own_rows_do_not_hold_back_its_other_inputs(lively, bank):
    table, admission, scheduler = _parts(lively, bank, prefill_tokens=4, long_pass_every=100)
    inputs = [{"text": f"note number {k} reads like this"} for k in range(3)]
    futures = admission.submit(admission.prepare(table, "notes", inputs, max_new_tokens=30))
    for _ in range(12):  # each input a long job of a few passes; no short row to protect
        _cycle(scheduler)
    assert len(scheduler.decoding) + sum(f.done() for f in futures) == 3 and not scheduler.jobs


def test_a_blocking_predict_that_times_out_gives_its_work_up(lively, bank):
    from clinprompt.serve.engine import EngineArgs, ServeEngine

    engine = ServeEngine(lively, bank.path, Limits(), EngineArgs(wait_ms=1))
    submitted = []
    submit = engine.submit

    def recorded(items):
        submitted.extend(items)
        return submit(items)

    engine.submit = recorded
    try:
        with pytest.raises(TimeoutError):
            engine.predict("notes", [{"text": "a"}], max_new_tokens=512, timeout=1e-3)
        assert submitted and all(it.given_up for it in submitted)
        err = submitted[0].future.exception(timeout=30)  # dropped by the worker, not finished
        assert isinstance(err, ServeError) and err.code == "timeout"
    finally:
        engine.stop()
