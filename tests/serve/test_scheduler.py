"""The scheduler on its own, stepped by hand or on its thread: scoring inputs are answered on
arrival while generation rows join the running batch, a failing batch fails only its rows, and
abandoning the batch fails what is left."""

from __future__ import annotations

import threading

import pytest
import torch

from clinprompt.decoding import PromptKVCache
from clinprompt.serve.admission import Admission, Limits, ServeError
from clinprompt.serve.scheduler import Scheduler
from clinprompt.serve.watcher import BankWatcher


def _parts(lively, bank, max_batch=8):
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
    score = scheduler.score
    calls = []

    def flaky(items):
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return score(items)

    scheduler.score = flaky
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
