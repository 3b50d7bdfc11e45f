"""Admission: requests become validated work items in a bounded queue, or a :class:`ServeError`.

A request is checked against the :class:`Limits` and the task table it was admitted with, and
split into one :class:`WorkItem` per input; the queue refuses items beyond ``max_queue``
(backpressure, 429), a request that would not be answered within ``request_timeout_s`` at the
worker's measured speed shared with the requests in flight (429, with the estimated excess as
``Retry-After``), and every item once the server drains (503). Waiting requests are served in
turn, one input each. The cheap checks come first:
counts, types and characters before any tokenization, so an oversized input costs a length, not
a tokenizer pass; then tokens, then the option-scoring budget. The scheduler takes items from the
same queue. Each error carries the HTTP status the app answers with.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from clinprompt.data.collate import encode_prompt
from clinprompt.decoding import encode_options
from clinprompt.serve.runtime import InputError, TaskRuntime, TaskTable, cue_length

__all__ = [
    "MODES",
    "Admission",
    "Limits",
    "ServeError",
    "WorkItem",
    "WorkRates",
    "gave_up",
    "shutting_down",
    "text_size",
]

MODES = ("auto", "generate", "score")

# Seconds a client should wait before retrying, per refusal (the Retry-After header).
_RETRY_AFTER_S = {"queue_full": 1, "timeout": 1, "shutting_down": 5, "task_unavailable": 30}


@dataclass(frozen=True)
class Limits:
    """What one request may cost; each limit names the HTTP status it answers beyond."""

    # tokens of one formatted input (instruction and cue excluded) → 413
    max_input_tokens: int = 1024
    max_inputs: int = 32  # inputs per request → 422
    max_queue: int = 256  # inputs waiting for the worker → 429
    request_timeout_s: float = 60.0  # a request not answered by then → 503
    max_new_tokens: int = 512  # the most a request may ask for → 422
    # characters of one input (all its strings), checked before tokenizing it → 413
    max_input_chars: int = 32768
    max_options: int = 64  # candidate answers of one input → 422
    max_option_tokens: int = 128  # tokens of one candidate answer (EOS included) → 413
    # option scoring of one request: the tokens its passes feed, Σ per input of its prompt and
    # input tokens once plus every candidate's tokens (per unit when answered unit by unit) → 413
    max_scoring_tokens: int = 16_384
    max_body_bytes: int = 1_048_576  # request body, refused before it is read past it → 413
    max_json_depth: int = 32  # nesting of the request body, checked before parsing → 422


class ServeError(Exception):
    """An error with its HTTP status, a machine-readable code and, for limits, the limit's name.

    Args:
        status, code, message: the HTTP status, the ``code`` and ``message`` of the JSON body.
        retry_after: seconds for the ``Retry-After`` header (default: per code on 429 and 503).
        **extra: more fields of the JSON body (``limit``, ``value``, ``index``, ``tasks``).
    """

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        if retry_after is None and status in (429, 503):
            retry_after = _RETRY_AFTER_S.get(code, 1)
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}

    def headers(self) -> dict[str, str]:
        """The response headers the error calls for (``WWW-Authenticate``, ``Retry-After``)."""
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def shutting_down() -> ServeError:
    """The refusal of every request once the server drains."""
    return ServeError(503, "shutting_down", "the server is shutting down; retry on another replica")


@dataclass
class WorkItem:
    """One input of one request, admitted and waiting for the worker."""

    task: TaskRuntime
    record: dict[str, Any]
    input_ids: list[int]
    candidates: list[str] | None  # score these options; None → generate
    max_new_tokens: int
    future: Future = field(default_factory=Future)
    option_ids: list[list[int]] | None = None  # the candidates' token ids (encode_options)
    request: int = 0  # the request it belongs to (numbered at submit)
    given_up: bool = False  # its request was answered without it (timeout): drop its work
    long: bool = False  # the worker took it as part of a long job

    def work(self) -> tuple[int, int]:
        """(tokens to prefill, at most; tokens to generate, at most) of this input."""
        fed = self.task.prompt.shape[0] + len(self.input_ids)
        if self.candidates is None:
            return fed, self.max_new_tokens
        return fed + sum(len(o) for o in self.option_ids or ()), 0


@dataclass(frozen=True)
class WorkRates:
    """How fast the worker runs, measured: what admission estimates a request's wait from.

    Args:
        prefill_s: seconds per prefilled (or scored) token.
        step_s: seconds per decode step of a full batch.
        rows: the rows one decode step advances (the batch size).
    """

    prefill_s: float
    step_s: float
    rows: int

    def seconds(self, prefill_tokens: float, new_tokens: float) -> float:
        """The estimated seconds of that much work, decode steps shared by ``rows`` rows."""
        return prefill_tokens * self.prefill_s + new_tokens * self.step_s / self.rows


def _step(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier() and key.isascii():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"  # ASCII-escaped: safe to echo whatever the key holds


def text_size(value: Any, path: str) -> int:
    """The characters of every string in ``value`` (keys included), refusing unencodable text.

    Raises:
        InputError: a string (or key) that is not valid Unicode text (a lone UTF-16 surrogate
            sent as ``\\ud800``), naming where it is.
    """
    total, stack = 0, [(value, path)]
    while stack:  # iterative: the depth of a JSON body is limited, but direct callers' is not
        node, where = stack.pop()
        if isinstance(node, str):
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    raise InputError(
                        f"{where} is not valid Unicode text (a lone surrogate such as \\ud800)"
                    ) from None
            total += len(node)
        elif isinstance(node, dict):
            for k, v in node.items():
                key = k if isinstance(k, str) else str(k)
                if not _encodable(key):
                    raise InputError(
                        f"{where} has a key that is not valid Unicode text (a lone surrogate such as \\ud800)"
                    )
                total += len(key)
                stack.append((v, _step(where, key)))
        elif isinstance(node, list):
            stack.extend((v, _step(where, i)) for i, v in enumerate(node))
    return total


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
        # waiting items per request, served round-robin: a small request is not queued behind
        # every input of a large one
        self._waiting: dict[int, deque[WorkItem]] = {}
        self._ready = threading.Condition(threading.Lock())
        self._pending = 0  # items admitted and not yet taken by the worker
        self._open = 0  # items admitted and not yet answered (queued, decoding or scoring)
        # per open request: [inputs, tokens to prefill, tokens to generate] not yet answered
        self._open_work: dict[int, list[int]] = {}
        self.rates: WorkRates | None = None  # the worker's measured speed (None: not yet)
        self.busy_share = 0.8  # refuse work estimated to wait past this share of the timeout
        self._lock = threading.Lock()
        self.closed = False  # draining: every new request is refused
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

        Tokenizes (call it off the event loop); every input is measured in characters first.

        Raises:
            ServeError: 404 unknown task, 413 an input or the option scoring over its limit,
                422 bad inputs or limits, 503 a task that cannot be served.
        """
        lim = self.limits
        if mode not in MODES:
            raise ServeError(
                422, "invalid_mode", f"mode must be one of {', '.join(MODES)}; got {mode!r}"
            )
        if not isinstance(inputs, list):
            raise ServeError(422, "invalid_request", "inputs must be a list of input records")
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
        if max_new_tokens is not None and (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, int)
            or not 1 <= max_new_tokens <= lim.max_new_tokens
        ):
            raise ServeError(
                422,
                "max_new_tokens",
                f"max_new_tokens must be an integer in 1..{lim.max_new_tokens}; got {max_new_tokens!r}",
                limit="max_new_tokens",
                value=lim.max_new_tokens,
            )
        if not isinstance(task, str) or not _encodable(task):
            raise ServeError(422, "invalid_request", "task must be a task name (valid text)")
        rt = self.task(table, task)
        items = []
        scoring_tokens = 0
        for i, raw in enumerate(inputs):
            try:
                chars = text_size(raw, f"inputs[{i}]")
                record = rt.check_input(i, raw)
            except InputError as err:
                raise ServeError(422, "invalid_input", str(err), index=i) from err
            if chars > lim.max_input_chars:
                raise ServeError(
                    413,
                    "input_too_long",
                    f"inputs[{i}] has {chars} characters; the limit max_input_chars is {lim.max_input_chars}",
                    limit="max_input_chars",
                    value=lim.max_input_chars,
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
                    index=i,
                )
            if cands is not None:
                self._check_candidates(i, cands)
            try:
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
            option_ids = None
            units = rt.units(record)
            if units is not None:
                # Answered per unit (pair-given RE: one per ordered entity pair, n(n-1) of them):
                # every unit is a row of at least the record's tokens, once per candidate (or
                # generating up to its budget), so they count against the scoring budget before
                # the worker builds a single row.
                scoring_tokens += self._units_cost(i, rt, ids, units, mode, max_new_tokens)
                if scoring_tokens > lim.max_scoring_tokens:
                    raise self._over_budget(scoring_tokens)
            elif cands is not None:
                option_ids = encode_options(self.tokenizer, cands)
                scoring_tokens += self._scoring_cost(i, rt, ids, cands, option_ids)
                if scoring_tokens > lim.max_scoring_tokens:  # stop tokenizing at once
                    raise self._over_budget(scoring_tokens)
            items.append(
                WorkItem(
                    rt,
                    record,
                    ids,
                    cands,
                    max_new_tokens or rt.max_new_tokens(),
                    option_ids=option_ids,
                )
            )
        return items

    def _over_budget(self, scoring_tokens: int) -> ServeError:
        budget = self.limits.max_scoring_tokens
        return ServeError(
            413,
            "scoring_too_large",
            f"scoring the candidate answers of this request feeds {scoring_tokens} tokens or more "
            f"(each input's prompt and input tokens once plus its candidates' tokens, per entity "
            f"pair where the task is answered pair by pair); the limit max_scoring_tokens "
            f"is {budget}: send fewer inputs or options per request",
            limit="max_scoring_tokens",
            value=budget,
        )

    def _check_candidates(self, i: int, cands: list[str]) -> None:
        lim = self.limits
        if len(cands) > lim.max_options:
            raise ServeError(
                422,
                "too_many_options",
                f"inputs[{i}] has {len(cands)} candidate answers; the limit max_options is {lim.max_options}",
                limit="max_options",
                value=lim.max_options,
                index=i,
            )
        if any(not isinstance(c, str) or not c.strip() for c in cands):
            raise ServeError(
                422, "invalid_input", f"inputs[{i}]: a candidate answer is empty", index=i
            )

    def _units_cost(
        self,
        i: int,
        rt: TaskRuntime,
        ids: list[int],
        units: list[dict[str, Any]],
        mode: str,
        max_new_tokens: int | None,
    ) -> int:
        """A lower bound of the tokens the worker runs for a record answered through ``units``:
        per unit, the prompt and the record's tokens, plus its candidates' tokens (or its
        generation budget when it generates)."""
        if not units:
            return 0
        cands = rt.candidates(units[0]) if mode != "generate" and self.scoring else None
        row = rt.prompt.shape[0] + len(ids)
        if cands:
            self._check_candidates(i, cands)
            per_unit = row + sum(len(opt) for opt in encode_options(self.tokenizer, cands))
        else:
            per_unit = row + (max_new_tokens or rt.max_new_tokens())
        return len(units) * per_unit

    def _scoring_cost(
        self, i: int, rt: TaskRuntime, ids: list[int], cands: list[str], option_ids: list[list[int]]
    ) -> int:
        """The tokens scoring one input feeds: its prompt and input once, then every candidate."""
        lim = self.limits
        for cand, opt in zip(cands, option_ids, strict=True):
            if len(opt) > lim.max_option_tokens:
                raise ServeError(
                    413,
                    "option_too_long",
                    f"inputs[{i}]: candidate answer {cand[:40]!r} has {len(opt)} tokens; "
                    f"the limit max_option_tokens is {lim.max_option_tokens}",
                    limit="max_option_tokens",
                    value=lim.max_option_tokens,
                    index=i,
                )
        return rt.prompt.shape[0] + len(ids) + sum(len(opt) for opt in option_ids)

    def submit(self, items: list[WorkItem]) -> list[Future]:
        """Queue admitted items; 429 when the queue would exceed ``max_queue`` or its work would
        outlast the request timeout at the measured speed, 503 when draining."""
        work = [it.work() for it in items]
        fed, new = sum(w[0] for w in work), sum(w[1] for w in work)
        with self._lock:
            if self.closed:
                raise shutting_down()
            if self._pending + len(items) > self.limits.max_queue:
                raise ServeError(
                    429,
                    "queue_full",
                    f"{self._pending} inputs are queued; the limit max_queue is {self.limits.max_queue}; retry later",
                    limit="max_queue",
                    value=self.limits.max_queue,
                )
            wait = self._wait_s(fed, new)
            allowed = self.busy_share * self.limits.request_timeout_s
            if wait is not None and wait > allowed:
                raise ServeError(
                    429,
                    "queue_full",
                    f"this request would be answered in about {wait:.0f} s at this server's "
                    f"measured speed, sharing it with the requests in flight; more than the "
                    f"request timeout allows (request_timeout_s="
                    f"{self.limits.request_timeout_s:g}); retry later",
                    retry_after=max(1, math.ceil(wait - allowed)),
                    limit="request_timeout_s",
                    value=self.limits.request_timeout_s,
                )
            self._pending += len(items)
            self._open += len(items)
            self.requests += 1
            self.items += len(items)
            request = self.requests
            self._open_work[request] = [len(items), fed, new]
        for item, (f, n) in zip(items, work, strict=True):
            item.request = request
            item.future.add_done_callback(lambda _, r=request, f=f, n=n: self._answered(r, f, n))
        with self._ready:
            self._waiting[request] = deque(items)
            self._ready.notify()
        return [it.future for it in items]

    @staticmethod
    def give_up(items: list[WorkItem]) -> None:
        """Mark ``items`` as no longer wanted (their request timed out): the worker drops them
        wherever they are (queued, joining, decoding or being scored) instead of finishing them."""
        for it in items:
            it.given_up = True

    def _answered(self, request: int, fed: int, new: int) -> None:
        with self._lock:
            self._open -= 1
            left = self._open_work[request]
            left[0], left[1], left[2] = left[0] - 1, left[1] - fed, left[2] - new
            if not left[0]:
                del self._open_work[request]

    def _wait_s(self, fed: int, new: int) -> float | None:
        """When a request of this work would be answered, in seconds, if the worker shared its
        measured speed equally among the requests in flight (processor sharing, as the
        round-robin queue and the short-first jobs approximate): until then, each request in
        flight does at most as much work as the new one. None: no measured speed, or nothing
        in flight (a request alone is always admitted; its limits bound it)."""
        if self.rates is None or not self._open_work:
            return None
        own = self.rates.seconds(fed, new)
        others = (self.rates.seconds(f, n) for _, f, n in self._open_work.values())
        return own + sum(min(o, own) for o in others)

    def set_rates(self, rates: WorkRates) -> None:
        """The worker's measured speed (the scheduler calls it as it measures)."""
        self.rates = rates

    def open_work_s(self) -> float | None:
        """The estimated seconds of the work admitted and not yet answered (None: no rates)."""
        with self._lock:
            if self.rates is None:
                return None
            return sum(self.rates.seconds(f, n) for _, f, n in self._open_work.values())

    def open(self) -> None:
        """Admit requests (again)."""
        with self._lock:
            self.closed = False

    def close(self) -> None:
        """Refuse every request from now on (503 ``shutting_down``); queued items stay."""
        with self._lock:
            self.closed = True

    def depth(self) -> int:
        """Items admitted and not yet taken by the worker."""
        return self._pending

    def in_flight(self) -> int:
        """Items admitted and not yet answered (queued, decoding or being scored)."""
        return self._open

    def waiting(self) -> int:
        """Items in the queue right now (what the scheduler could take)."""
        with self._ready:
            return sum(len(q) for q in self._waiting.values())

    def take(
        self, limit: int, wait: bool, wait_ms: float, max_tokens: int | None = None
    ) -> list[WorkItem]:
        """Up to ``limit`` queued items, one request at a time in turn (round-robin), and at
        most ``max_tokens`` input tokens (at least one item); with ``wait``, block for one, then
        up to ``wait_ms`` for more.

        Items whose request gave up (cancelled futures, or marked by :meth:`give_up`) are
        dropped; the others are marked running.
        """
        batch: list[WorkItem] = []
        tokens = 0
        deadline = time.monotonic() + wait_ms / 1000
        with self._ready:
            if wait and not self._waiting:
                self._ready.wait(timeout=0.1)
                if not self._waiting:
                    return []
            while len(batch) < limit:
                if not self._waiting:
                    left = deadline - time.monotonic() if wait and batch else 0
                    if left <= 0 or not self._ready.wait(timeout=left) or not self._waiting:
                        break
                request = next(iter(self._waiting))
                items = self._waiting.pop(request)
                item = items[0]
                if batch and max_tokens is not None and tokens + len(item.input_ids) > max_tokens:
                    self._waiting = {request: items, **self._waiting}  # it leads next time
                    break
                items.popleft()
                batch.append(item)
                tokens += len(item.input_ids)
                if items:
                    self._waiting[request] = items  # to the back of the turn
        with self._lock:
            self._pending -= len(batch)
        taken = []
        for it in batch:
            if it.given_up:
                if it.future.set_running_or_notify_cancel():
                    it.future.set_exception(gave_up())
            elif it.future.set_running_or_notify_cancel():
                taken.append(it)
        return taken

    def drain(self, err: ServeError) -> None:
        """Fail every queued item with ``err`` and empty the queue (at shutdown)."""
        with self._ready:
            items = [it for q in self._waiting.values() for it in q]
            self._waiting = {}
        with self._lock:
            self._pending -= len(items)
        for item in items:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(err)


def gave_up() -> ServeError:
    """The answer of work dropped because its request was already answered (timeout)."""
    return ServeError(503, "timeout", "the request timed out before this input was answered")
