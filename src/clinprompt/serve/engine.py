"""The serving engine: one backbone, one prompt bank, continuous batching across tasks.

A facade over three parts:

- :class:`~clinprompt.serve.admission.Admission` checks a request against the :class:`Limits`
  and the current task table, splits it into :class:`WorkItem` objects (one per input) and
  queues them, refusing beyond ``max_queue``; each refusal is a :class:`ServeError` carrying the
  HTTP status the app returns;
- :class:`~clinprompt.serve.watcher.BankWatcher` holds the task table and swaps in a new one on
  :meth:`ServeEngine.reload` or when ``bank.json`` changes; queued items keep the task runtime
  they were admitted with, so none is dropped;
- :class:`~clinprompt.serve.scheduler.Scheduler` is the worker thread: continuous batching of
  generation rows across tasks, option scoring, and the answer of every item's
  :class:`concurrent.futures.Future`.

Shutdown drains: :meth:`ServeEngine.drain` refuses new requests (503 ``shutting_down``), lets
the admitted ones finish for up to a timeout, then fails what is left with the same 503.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinprompt.backbone import Backbone
from clinprompt.decoding import DecodeBatch, PromptKVCache
from clinprompt.serve.admission import Admission, Limits, ServeError, WorkItem, shutting_down
from clinprompt.serve.logs import log_event
from clinprompt.serve.runtime import TaskRuntime, TaskTable
from clinprompt.serve.scheduler import Scheduler
from clinprompt.serve.watcher import BankWatcher

__all__ = ["EngineArgs", "Limits", "ServeEngine", "ServeError", "WorkItem"]


@dataclass(frozen=True)
class EngineArgs:
    """Batching: up to ``max_batch`` rows decode together; an idle worker waits ``wait_ms`` to fill.

    While rows are decoding, queued inputs join once ``prefill_group`` of them are waiting (or
    fewer when that fills the batch), or after at most ``max_defer_steps`` decode steps: joining
    rows are prefilled together, and one prefill of 8 rows costs about as much as 4 of 1 row on a
    CPU, so gathering a few before interrupting the decode raises throughput at the cost of a
    few decode steps of latency. A cycle takes at most ``prefill_tokens`` input tokens, and one
    forward pass prefills at most that many; a longer job (a long input, many options) runs a
    pass at a time, and while rows decode one pass every ``long_pass_every`` steps, so it never
    holds a short request for more than a pass.
    """

    max_batch: int = 16
    wait_ms: float = 10.0
    prefill_group: int = 4
    max_defer_steps: int = 4
    length_normalize: bool = False  # option scoring: mean instead of summed log-probability
    watch_interval_s: float = 0.0  # > 0: poll bank.json and reload when it changes
    # option scoring runs in chunks of candidates whose cache copies and logits fit this (MiB)
    scoring_batch_mb: float = 256.0
    prefill_tokens: int = 256
    long_pass_every: int = 16

    def scheduling(self) -> dict[str, Any]:
        """The options :class:`~clinprompt.serve.scheduler.Scheduler` takes."""
        return {
            "max_batch": self.max_batch,
            "wait_ms": self.wait_ms,
            "prefill_group": self.prefill_group,
            "max_defer_steps": self.max_defer_steps,
            "length_normalize": self.length_normalize,
            "scoring_batch_bytes": int(self.scoring_batch_mb * 2**20),
            "prefill_tokens": self.prefill_tokens,
            "long_pass_every": self.long_pass_every,
        }


class ServeEngine:
    """One frozen backbone serving every task of a prompt bank.

    Args:
        backbone: the loaded backbone (its fingerprint must match the bank's).
        bank_path: the bank directory.
        limits: admission limits.
        args: batching options.
    """

    supports_scoring = True

    def __init__(
        self,
        backbone: Backbone,
        bank_path: str | Path,
        limits: Limits | None = None,
        args: EngineArgs | None = None,
    ) -> None:
        self.backbone = backbone
        self.bank_path = Path(bank_path)
        self.limits = limits or Limits()
        self.args = args or EngineArgs()
        self.tokenizer = backbone.tokenizer
        self.prompt_cache = PromptKVCache(backbone.model)
        self.admission = Admission(self.tokenizer, self.limits, scoring=self.supports_scoring)
        self.scheduler = Scheduler(
            backbone, self.prompt_cache, self.admission, **self.args.scheduling()
        )
        self.watcher = BankWatcher(self.bank_path, backbone, self.prompt_cache)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> ServeEngine:
        """Start the worker (and the bank watcher); idempotent."""
        with self._lock:
            if self._threads:
                return self
            self._stop.clear()
            self.admission.open()
            self._threads.append(
                threading.Thread(
                    target=self.scheduler.run,
                    args=(self._stop,),
                    name="clinprompt-worker",
                    daemon=True,
                )
            )
            if self.args.watch_interval_s > 0:
                self._threads.append(
                    threading.Thread(
                        target=self.watcher.run,
                        args=(self._stop, self.args.watch_interval_s),
                        name="clinprompt-watch",
                        daemon=True,
                    )
                )
            for t in self._threads:
                t.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker after its current step; unanswered items fail with 503."""
        self.admission.close()
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        self.scheduler.abandon(shutting_down())
        self.admission.drain(shutting_down())

    @property
    def running(self) -> bool:
        return bool(self._threads)

    @property
    def draining(self) -> bool:
        """True once :meth:`begin_drain` (or :meth:`stop`) was called: requests are refused."""
        return self.admission.closed

    def begin_drain(self) -> None:
        """Refuse new requests with 503 ``shutting_down``; admitted ones keep running."""
        self.admission.close()

    def in_flight(self) -> int:
        """Inputs admitted and not yet answered."""
        return self.admission.in_flight()

    def drain(self, timeout_s: float, poll_s: float = 0.02) -> dict[str, int]:
        """Stop admitting, let in-flight inputs finish for up to ``timeout_s``, then cut the rest.

        Cut inputs are answered 503 ``shutting_down`` (queued ones at once, rows being decoded
        by the worker before its next step). Blocks; the worker keeps running (:meth:`stop` ends it).

        Returns:
            ``{"in_flight": inputs when it began, "cut": inputs failed at the timeout}``.
        """
        self.begin_drain()
        start, deadline = self.in_flight(), time.monotonic() + timeout_s
        log_event(
            logging.INFO,
            "draining",
            f"draining: {start} inputs in flight, up to {timeout_s:g} s",
            in_flight=start,
            drain_timeout_s=timeout_s,
        )
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(poll_s)
        cut = self.in_flight()
        if cut:
            self.admission.drain(shutting_down())  # queued: failed now
            self.scheduler.cut(shutting_down())  # decoding: failed by the worker
            if not self.running:  # no worker to do it
                self.scheduler.abandon(shutting_down())
            give_up = time.monotonic() + 10.0  # one decode step or scoring pass, at most
            while self.in_flight() and time.monotonic() < give_up:
                time.sleep(poll_s)
        log_event(
            logging.INFO if not cut else logging.WARNING,
            "drained",
            f"drained: {start - cut} of {start} in-flight inputs answered, {cut} cut",
            in_flight=start,
            cut=cut,
            left=self.in_flight(),
        )
        return {"in_flight": start, "cut": cut}

    def queue_depth(self) -> int:
        return self.admission.depth()

    # --------------------------------------------------------------------------------- tables
    @property
    def table(self) -> TaskTable:
        """The task table requests are admitted with now."""
        return self.watcher.table

    def reload(self) -> dict[str, list[str]]:
        """Re-read the bank and swap the task table in; queued items are unaffected.

        Returns:
            ``{"tasks": [...], "added": [...], "removed": [...], "changed": [...]}``.
        """
        return self.watcher.reload(trigger="api")

    # ------------------------------------------------------------------------------ admission
    def task(self, name: str) -> TaskRuntime:
        """The runtime of task ``name``; 404 listing the tasks, 503 when it cannot be served."""
        return self.admission.task(self.table, name)

    def prepare(
        self, task: str, inputs: list[Any], mode: str = "auto", max_new_tokens: int | None = None
    ) -> list[WorkItem]:
        """Validate a request and turn it into work items (nothing is queued yet).

        Raises:
            ServeError: 404 unknown task, 413 input too long, 422 bad inputs or limits.
        """
        return self.admission.prepare(self.table, task, inputs, mode, max_new_tokens)

    def submit(self, items: list[WorkItem]) -> list[Future]:
        """Queue admitted items (the worker runs them once started); 429 beyond ``max_queue``."""
        return self.admission.submit(items)

    def predict(
        self,
        task: str,
        inputs: list[Any],
        mode: str = "auto",
        max_new_tokens: int | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Blocking convenience: start if needed, prepare, submit and wait (scripts and tests)."""
        self.start()
        items = self.prepare(task, inputs, mode, max_new_tokens)
        futures = self.submit(items)
        deadline = time.monotonic() + (timeout or self.limits.request_timeout_s)
        try:
            return [f.result(timeout=max(0.0, deadline - time.monotonic())) for f in futures]
        except TimeoutError:
            self.admission.give_up(items)  # as the app does: the worker drops the rest
            raise

    # --------------------------------------------------------------------------------- worker
    def run_batch(self, batch: list[WorkItem]) -> None:
        """Run one mixed-task batch to completion (static batching) and resolve every item."""
        self.scheduler.run_batch(batch)

    def _cycle(self, taken: list[WorkItem]) -> None:
        """One scheduler cycle on the caller's thread (tests step the worker by hand)."""
        self.scheduler.cycle(taken)

    @property
    def _decoding(self) -> DecodeBatch:
        """The rows being generated (tests inspect them)."""
        return self.scheduler.decoding

    # --------------------------------------------------------------------------------- health
    @property
    def stats(self) -> dict[str, int]:
        """Counters: requests and inputs queued, batches admitted, reloads."""
        return {
            "requests": self.admission.requests,
            "items": self.admission.items,
            "batches": self.scheduler.batches,
            "reloads": self.watcher.reloads,
        }

    def health(self) -> dict[str, Any]:
        """Status (``ok``, ``starting``, ``draining``), queue depth, in-flight inputs, counters."""
        status = "draining" if self.draining else "ok" if self.running else "starting"
        return {
            "status": status,
            "backbone": self.backbone.fingerprint.name,
            "tasks": len(self.table.tasks),
            "queue_depth": self.queue_depth(),
            "in_flight": self.in_flight(),
            "bank_version": self.table.version,
            **self.stats,
        }
