"""Admission: requests become validated work items in a bounded queue, or a :class:`ServeError`.

A request is checked against the :class:`Limits` (inputs per request, input length, the
``max_new_tokens`` it may ask for) and the task table it was admitted with, and split into one
:class:`WorkItem` per input; the queue refuses items beyond ``max_queue`` (backpressure, 429). The
scheduler takes items from the same queue. Each error carries the HTTP status the app answers with.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from clinprompt.data.collate import encode_prompt
from clinprompt.serve.runtime import InputError, TaskRuntime, TaskTable, cue_length

__all__ = ["MODES", "Admission", "Limits", "ServeError", "WorkItem"]

MODES = ("auto", "generate", "score")


@dataclass(frozen=True)
class Limits:
    """Admission limits; each names the HTTP status it maps to."""

    # tokens of one formatted input (instruction and cue excluded) → 413
    max_input_tokens: int = 1024
    max_inputs: int = 32  # inputs per request → 422
    max_queue: int = 256  # inputs waiting for the worker → 429
    request_timeout_s: float = 60.0  # a request not answered by then → 503
    max_new_tokens: int = 512  # the most a request may ask for → 422


class ServeError(Exception):
    """An error with its HTTP status, a machine-readable code and, for limits, the limit's name."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


@dataclass
class WorkItem:
    """One input of one request, admitted and waiting for the worker."""

    task: TaskRuntime
    record: dict[str, Any]
    input_ids: list[int]
    candidates: list[str] | None  # score these options; None → generate
    max_new_tokens: int
    future: Future = field(default_factory=Future)


class Admission:
    """Validates requests into work items and holds the bounded queue the scheduler takes from.

    Args:
        tokenizer: the backbone's tokenizer (inputs are measured in its tokens).
        limits: the admission limits.
        scoring: whether inputs with candidate answers are scored (False: always generated).
    """

    def __init__(self, tokenizer: Any, limits: Limits, scoring: bool = True) -> None:
        self.tokenizer = tokenizer
        self.limits = limits
        self.scoring = scoring
        self._cue = cue_length(tokenizer)
        self._queue: queue.Queue[WorkItem] = queue.Queue()
        self._pending = 0  # items admitted and not yet taken by the worker
        self._lock = threading.Lock()
        self.requests = 0  # requests queued
        self.items = 0  # inputs queued

    def task(self, table: TaskTable, name: str) -> TaskRuntime:
        """The runtime of task ``name``; 404 listing the tasks, 503 when it cannot be served."""
        if name not in table.tasks:
            raise ServeError(
                404,
                "unknown_task",
                f"unknown task {name!r}; this server has: {', '.join(table.names()) or '(none)'}",
                tasks=table.names(),
            )
        rt = table.tasks[name]
        if rt.unavailable:
            raise ServeError(
                503, "task_unavailable", f"task {name!r} cannot be served: {rt.unavailable}"
            )
        return rt

    def prepare(
        self,
        table: TaskTable,
        task: str,
        inputs: list[Any],
        mode: str = "auto",
        max_new_tokens: int | None = None,
    ) -> list[WorkItem]:
        """Validate a request against ``table`` and turn it into work items (nothing is queued).

        Raises:
            ServeError: 404 unknown task, 413 input too long, 422 bad inputs or limits, 503 a
                task that cannot be served.
        """
        lim = self.limits
        if mode not in MODES:
            raise ServeError(
                422, "invalid_mode", f"mode must be one of {', '.join(MODES)}; got {mode!r}"
            )
        if not inputs:
            raise ServeError(422, "empty_inputs", "inputs is empty; send at least one input record")
        if len(inputs) > lim.max_inputs:
            raise ServeError(
                422,
                "too_many_inputs",
                f"{len(inputs)} inputs in one request; the limit max_inputs is {lim.max_inputs}",
                limit="max_inputs",
                value=lim.max_inputs,
            )
        if max_new_tokens is not None and not 1 <= max_new_tokens <= lim.max_new_tokens:
            raise ServeError(
                422,
                "max_new_tokens",
                f"max_new_tokens must be in 1..{lim.max_new_tokens}; got {max_new_tokens}",
                limit="max_new_tokens",
                value=lim.max_new_tokens,
            )
        rt = self.task(table, task)
        items = []
        for i, raw in enumerate(inputs):
            try:
                record = rt.check_input(i, raw)
                example = rt.example(i, record)
            except InputError as err:
                raise ServeError(422, "invalid_input", str(err), index=i) from err
            ids = encode_prompt(self.tokenizer, example)
            body = len(ids) - len(rt.head_ids) - self._cue
            if body > lim.max_input_tokens:
                raise ServeError(
                    413,
                    "input_too_long",
                    f"inputs[{i}] has {body} tokens; the limit max_input_tokens is {lim.max_input_tokens}",
                    limit="max_input_tokens",
                    value=lim.max_input_tokens,
                    index=i,
                )
            cands = None
            if mode != "generate" and self.scoring:
                cands = rt.candidates(record)
            if mode == "score" and not cands:
                raise ServeError(
                    422,
                    "not_scorable",
                    f"inputs[{i}] has no candidate answers to score (task type {rt.entry.task_type}); use mode generate or auto",
                )
            items.append(WorkItem(rt, record, ids, cands, max_new_tokens or rt.max_new_tokens()))
        return items

    def submit(self, items: list[WorkItem]) -> list[Future]:
        """Queue admitted items; 429 when the queue would exceed ``max_queue``."""
        with self._lock:
            if self._pending + len(items) > self.limits.max_queue:
                raise ServeError(
                    429,
                    "queue_full",
                    f"{self._pending} inputs are queued; the limit max_queue is {self.limits.max_queue}; retry later",
                    limit="max_queue",
                    value=self.limits.max_queue,
                )
            self._pending += len(items)
            self.requests += 1
            self.items += len(items)
        for item in items:
            self._queue.put(item)
        return [it.future for it in items]

    def depth(self) -> int:
        """Items admitted and not yet taken by the worker."""
        return self._pending

    def waiting(self) -> int:
        """Items in the queue right now (what the scheduler could take)."""
        return self._queue.qsize()

    def take(self, limit: int, wait: bool, wait_ms: float) -> list[WorkItem]:
        """Up to ``limit`` queued items; with ``wait``, block for one, then up to ``wait_ms`` for more.

        Items whose request gave up (cancelled futures) are dropped; the others are marked running.
        """
        batch: list[WorkItem] = []
        deadline = time.monotonic() + wait_ms / 1000
        if wait:
            try:
                batch.append(self._queue.get(timeout=0.1))
            except queue.Empty:
                return []
        while len(batch) < limit:
            left = deadline - time.monotonic() if wait else 0
            try:
                batch.append(
                    self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        with self._lock:
            self._pending -= len(batch)
        return [it for it in batch if it.future.set_running_or_notify_cancel()]

    def drain(self, err: ServeError) -> None:
        """Fail every queued item with ``err`` and empty the queue (at shutdown)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(err)
        self._pending = 0
