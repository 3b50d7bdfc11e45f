"""The serving engine: one backbone, one prompt bank, continuous batching across tasks.

Requests are split into items (one per input) and queued. A worker thread runs a
:class:`~clinprompt.decoding.DecodeBatch`: at every decode step it admits queued items
(waiting up to ``wait_ms`` to gather them when idle) up to ``max_batch`` rows, prefilling them
from the per-task prompt KV caches, whatever their tasks; a row that finishes leaves at once and
its future resolves. Classification items (records with candidates) are scored in one
:func:`option_logprobs` pass on arrival. Each item resolves its own
:class:`concurrent.futures.Future`.

Limits are checked at admission (input length, inputs per request, queue depth) and raise
:class:`ServeError` with the HTTP status the app returns. A reload builds a new task table and
swaps it in; queued items keep the task runtime they were admitted with, so none is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clinprompt.backbone import Backbone
from clinprompt.data.collate import encode_prompt
from clinprompt.decoding import (
    DecodeBatch,
    PromptKVCache,
    encode_options,
    greedy_generate,
    option_logprobs,
)
from clinprompt.prompts.bank import PromptBank
from clinprompt.serve.runtime import InputError, TaskRuntime, TaskTable, cue_length, load_task_table

__all__ = ["EngineArgs", "Limits", "ServeEngine", "ServeError", "WorkItem"]

log = logging.getLogger("clinprompt.serve")
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


@dataclass(frozen=True)
class EngineArgs:
    """Batching: up to ``max_batch`` rows decode together; an idle worker waits ``wait_ms`` to fill.

    While rows are decoding, queued inputs join once ``prefill_group`` of them are waiting (or
    fewer when that fills the batch), or after at most ``max_defer_steps`` decode steps: joining
    rows are prefilled together, and one prefill of 8 rows costs about as much as 4 of 1 row on a
    CPU, so gathering a few before interrupting the decode raises throughput at the cost of a
    few decode steps of latency.
    """

    max_batch: int = 16
    wait_ms: float = 10.0
    prefill_group: int = 4
    max_defer_steps: int = 4
    length_normalize: bool = False  # option scoring: mean instead of summed log-probability
    watch_interval_s: float = 0.0  # > 0: poll bank.json and reload when it changes


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
        self._cue = cue_length(self.tokenizer)
        self._queue: queue.Queue[WorkItem] = queue.Queue()
        self._pending = 0  # items admitted and not yet taken by the worker
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._bank_mtime = 0
        self.stats = {"requests": 0, "items": 0, "batches": 0, "reloads": 0}
        self._decoding = self._new_decoding()  # the rows being generated (worker thread only)
        self._deferred = 0  # decode steps run while inputs were waiting to join
        self.table = self._load_table(0)

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> ServeEngine:
        """Start the worker (and the bank watcher); idempotent."""
        with self._lock:
            if self._threads:
                return self
            self._stop.clear()
            self._threads.append(
                threading.Thread(target=self._work, name="clinprompt-worker", daemon=True)
            )
            if self.args.watch_interval_s > 0:
                self._threads.append(
                    threading.Thread(target=self._watch, name="clinprompt-watch", daemon=True)
                )
            for t in self._threads:
                t.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker after its current step; unanswered items fail with 503."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        self._fail(
            self._decoding.live_tags,
            ServeError(503, "shutting_down", "the server is shutting down"),
        )
        self._decoding = self._new_decoding()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(
                    ServeError(503, "shutting_down", "the server is shutting down")
                )
        self._pending = 0

    @property
    def running(self) -> bool:
        return bool(self._threads)

    def queue_depth(self) -> int:
        return self._pending

    # --------------------------------------------------------------------------------- tables
    def _load_table(self, version: int) -> TaskTable:
        bank = PromptBank.load(self.bank_path, expect=self.backbone.fingerprint)
        self._bank_mtime = self._mtime()
        table = load_task_table(
            bank, self.tokenizer, self.backbone.device, self.backbone.dtype, version
        )
        for rt in table.tasks.values():  # every request of a task starts with its instruction
            self.prompt_cache.set_prefix(rt.key, rt.head_ids)
        return table

    def _mtime(self) -> int:
        try:
            return (self.bank_path / "bank.json").stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def reload(self) -> dict[str, list[str]]:
        """Re-read the bank and swap the task table in; queued items are unaffected.

        Returns:
            ``{"tasks": [...], "added": [...], "removed": [...], "changed": [...]}``.
        """
        with self._reload_lock:
            old = self.table
            new = self._load_table(old.version + 1)
            self.table = new  # one reference swap: admissions see the old or the new table, whole
            self.prompt_cache.invalidate(keep={rt.key for rt in new.tasks.values()})
            self.stats["reloads"] += 1
        changed = [n for n in new.tasks if n in old.tasks and new.tasks[n].key != old.tasks[n].key]
        return {
            "tasks": new.names(),
            "added": [n for n in new.tasks if n not in old.tasks],
            "removed": [n for n in old.tasks if n not in new.tasks],
            "changed": changed,
        }

    def _watch(self) -> None:
        while not self._stop.wait(self.args.watch_interval_s):
            mtime = self._mtime()
            if mtime != self._bank_mtime:
                self._bank_mtime = mtime  # a broken bank is reported once, not at every poll
                try:
                    log.info("bank changed: %s", self.reload())
                except Exception as err:  # a half-edited bank: keep serving the old table
                    log.warning("bank reload failed, still serving the previous tasks: %s", err)

    # ------------------------------------------------------------------------------ admission
    def task(self, name: str) -> TaskRuntime:
        """The runtime of task ``name``; 404 listing the tasks, 503 when it cannot be served."""
        table = self.table
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
        self, task: str, inputs: list[Any], mode: str = "auto", max_new_tokens: int | None = None
    ) -> list[WorkItem]:
        """Validate a request and turn it into work items (nothing is queued yet).

        Raises:
            ServeError: 404 unknown task, 413 input too long, 422 bad inputs or limits.
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
        rt = self.task(task)
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
            if mode != "generate" and self.supports_scoring:
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
        """Queue admitted items (the worker runs them once started); 429 beyond ``max_queue``."""
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
            self.stats["requests"] += 1
            self.stats["items"] += len(items)
        for item in items:
            self._queue.put(item)
        return [it.future for it in items]

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
        futures = self.submit(self.prepare(task, inputs, mode, max_new_tokens))
        deadline = time.monotonic() + (timeout or self.limits.request_timeout_s)
        return [f.result(timeout=max(0.0, deadline - time.monotonic())) for f in futures]

    # --------------------------------------------------------------------------------- worker
    def _take(self, limit: int, wait: bool) -> list[WorkItem]:
        """Up to ``limit`` queued items; with ``wait``, block for one, then up to ``wait_ms`` for more."""
        batch: list[WorkItem] = []
        deadline = time.monotonic() + self.args.wait_ms / 1000
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
        # Items whose request timed out (cancelled futures) are dropped here.
        return [it for it in batch if it.future.set_running_or_notify_cancel()]

    def _work(self) -> None:
        while not self._stop.is_set():
            taken: list[WorkItem] = []
            try:
                with torch.inference_mode():
                    self._cycle(taken)
            except Exception as err:  # these rows fail, the server keeps serving
                log.exception("a batch failed")
                self._fail(
                    taken + self._decoding.live_tags,
                    ServeError(500, "internal_error", f"the batch failed: {err!r}"),
                )
                self._decoding = self._new_decoding()

    def _cycle(self, taken: list[WorkItem]) -> None:
        """Continuous batching: admit queued inputs into the running batch, then decode one step.

        New generation rows are prefilled (from the prompt KV caches) and join the rows already
        decoding; a finished row leaves at once and its request is answered, so the batch stays
        full while requests keep coming. Classification inputs are scored in one pass on arrival.
        """
        running = self._decoding
        free = self.args.max_batch - len(running)
        if (
            running
            and free > 0
            and self._queue.qsize() < min(free, self.args.prefill_group)
            and self._deferred < self.args.max_defer_steps
        ):
            self._deferred += 1  # let a few more arrive and prefill them together
        elif free > 0:
            self._deferred = 0
            taken += self._take(free, wait=not running)
        if taken:
            self.stats["batches"] += 1
            for (scoring, _), items in self._groups(taken).items():
                if scoring:
                    self._answer_scores(items)
                else:
                    prompts = torch.stack([it.task.prompt for it in items])  # (B, P, D)
                    self._answer_generations(
                        running.add(
                            prompts,
                            [it.input_ids for it in items],
                            [it.max_new_tokens for it in items],
                            tags=items,
                            task_keys=[it.task.key for it in items],
                        )
                    )
            taken.clear()
        if running:
            self._answer_generations(running.step())

    def _new_decoding(self) -> DecodeBatch:
        return DecodeBatch(
            self.backbone.model,
            self.tokenizer.eos_token_id,
            self.tokenizer.pad_token_id,
            self.prompt_cache,
        )

    @staticmethod
    def _groups(items: list[WorkItem]) -> dict[tuple[bool, int], list[WorkItem]]:
        """Scoring vs generation, and by P (prompts of one group stack; P changes only by a reload)."""
        groups: dict[tuple[bool, int], list[WorkItem]] = {}
        for it in items:
            groups.setdefault((it.candidates is not None, it.task.prompt.shape[0]), []).append(it)
        return groups

    def _fail(self, items: list[WorkItem], err: ServeError) -> None:
        for it in items:
            if not it.future.done():
                it.future.set_exception(err)

    def run_batch(self, batch: list[WorkItem]) -> None:
        """Run one mixed-task batch to completion (static batching) and resolve every item."""
        for (scoring, _), items in self._groups(batch).items():
            if scoring:
                self._answer_scores(items)
            else:
                self._answer_generations(list(zip(items, self._generate(items), strict=True)))

    def _answer_generations(self, finished: list[tuple[WorkItem, list[int]]]) -> None:
        for it, ids in finished:
            self._resolve(
                it,
                self.tokenizer.decode(ids, skip_special_tokens=True).strip(),
                "generate",
                len(ids),
                None,
            )

    def _answer_scores(self, items: list[WorkItem]) -> None:
        for it, scores in zip(items, self._score(items), strict=True):
            best = max(range(len(scores)), key=scores.__getitem__)
            self._resolve(
                it, it.candidates[best], "score", 0, dict(zip(it.candidates, scores, strict=True))
            )

    def _generate(self, items: list[WorkItem]) -> list[list[int]]:
        prompts = torch.stack([it.task.prompt for it in items])  # (B, P, D)
        return greedy_generate(
            self.backbone.model,
            prompts,
            [it.input_ids for it in items],
            [it.max_new_tokens for it in items],
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            prompt_cache=self.prompt_cache,
            task_keys=[it.task.key for it in items],
        )

    def _score(self, items: list[WorkItem]) -> list[list[float]]:
        prompts = torch.stack([it.task.prompt for it in items])  # (B, P, D)
        return option_logprobs(
            self.backbone.model,
            prompts,
            [it.input_ids for it in items],
            [encode_options(self.tokenizer, it.candidates) for it in items],
            length_normalize=self.args.length_normalize,
            prompt_cache=self.prompt_cache,
            task_keys=[it.task.key for it in items],
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def _resolve(
        self, item: WorkItem, text: str, mode: str, tokens: int, scores: dict[str, float] | None
    ) -> None:
        try:
            prediction, ok = item.task.structure(text, item.record)
        except Exception as err:  # parse() must never raise; if it does, answer with the raw text
            log.warning("parse failed for task %s: %r", item.task.name, err)
            prediction, ok = {"id": item.record["id"]}, False
        item.future.set_result(
            {
                "id": item.record["id"],
                "prediction": prediction,
                "generation": text,
                "parsed_ok": ok,
                "mode": mode,
                "generated_tokens": tokens,
                "scores": scores,
            }
        )

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.running else "starting",
            "backbone": self.backbone.fingerprint.name,
            "tasks": len(self.table.tasks),
            "queue_depth": self._pending,
            "bank_version": self.table.version,
            **self.stats,
        }
