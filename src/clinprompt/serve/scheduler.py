"""The worker loop: continuous batching of admitted items across tasks, and their answers.

A worker thread runs a :class:`~clinprompt.decoding.DecodeBatch`: before every decode step it
takes queued items (waiting up to ``wait_ms`` to gather them when idle), one request at a time in
turn and at most ``prefill_tokens`` input tokens a cycle (at least one input), so a short request
is taken within a cycle of arriving. What it takes becomes a *job*: generation inputs are
prefilled from the per-task prompt KV caches, whatever their tasks, and join the running batch;
classification items (records with candidates) are scored by
:func:`~clinprompt.decoding.option_logprob_passes` (the inputs' prefill, then chunks of
candidates whose memory fits ``scoring_batch_bytes``). Every job runs as forward passes of at
most ``prefill_tokens`` positions. A short job (at most ``prefill_tokens`` tokens: a new request
of ordinary size) runs at once; a long one advances one pass per cycle while nothing decodes,
and only one pass every ``long_pass_every`` decode steps while rows of short jobs decode — so a
long request (a 1,000-token input, 60 options) never holds a short one for more than a pass, and
still progresses under a steady stream of generation (its own rows never hold it back). A row that finishes leaves at once and its
future resolves. Items taken and not yet answered stay within ``max_batch``; the rest wait in
the admission queue. Work for a request that timed out is dropped wherever it is.
An item whose task answers it through several units
(pair-given RE: one question per ordered entity pair) is answered on arrival too: its units are
scored (or generated) together, ``max_batch`` rows at a time, and merged into one answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from clinprompt.backbone import Backbone
from clinprompt.data.collate import encode_prompt
from clinprompt.decoding import (
    DecodeBatch,
    PromptKVCache,
    encode_options,
    greedy_generate,
    option_logprob_passes,
    run_passes,
)
from clinprompt.serve.admission import Admission, ServeError, WorkItem, WorkRates, gave_up
from clinprompt.serve.logs import log_event

__all__ = ["Scheduler"]


@dataclass
class _Job:
    """Items taken together and the forward passes left to answer them."""

    items: list[WorkItem]
    passes: Generator[None, None, Any]  # returns the scores, or the prefill to join
    scoring: bool
    fed: int  # tokens it feeds (prompt, inputs, candidates)
    long: bool  # more input and candidate tokens than a cycle takes: runs a pass at a time
    seconds: float = 0.0  # spent so far


class Scheduler:
    """Takes work from the admission queue, decodes and scores it, and answers every future.

    Args:
        backbone: the frozen backbone (model and tokenizer).
        prompt_cache: per-task prompt KV caches, shared with the task table's watcher.
        admission: the queue to take work from.
        max_batch: the most rows decoding together.
        wait_ms: how long an idle worker waits to gather more inputs.
        prefill_group: while rows decode, waiting inputs join once this many wait (or fewer
            when they fill the batch) ...
        max_defer_steps: ... or after this many decode steps.
        length_normalize: option scoring ranks by the mean instead of the summed log-probability.
        scoring_batch_bytes: the memory budget of one option-scoring pass (None: unbounded).
        prefill_tokens: the most input tokens one cycle takes, and one forward pass prefills.
        long_pass_every: while rows decode, a long job advances one pass per this many steps.
    """

    def __init__(
        self,
        backbone: Backbone,
        prompt_cache: PromptKVCache,
        admission: Admission,
        *,
        max_batch: int,
        wait_ms: float,
        prefill_group: int,
        max_defer_steps: int,
        length_normalize: bool,
        scoring_batch_bytes: int | None = None,
        prefill_tokens: int = 256,
        long_pass_every: int = 16,
    ) -> None:
        self.backbone = backbone
        self.tokenizer = backbone.tokenizer
        self.prompt_cache = prompt_cache
        self.admission = admission
        self.max_batch, self.wait_ms = max_batch, wait_ms
        self.prefill_group, self.max_defer_steps = prefill_group, max_defer_steps
        self.length_normalize = length_normalize
        self.scoring_batch_bytes = scoring_batch_bytes
        self.prefill_tokens = max(1, prefill_tokens)
        self.long_pass_every = max(1, long_pass_every)
        self.jobs: list[_Job] = []  # long jobs, oldest first (worker thread only)
        self._steps_since_long = 0
        # measured speed, moving averages: seconds per prefilled token and per full decode step
        self.prefill_s: float | None = None
        self.step_s: float | None = None
        self._cut: ServeError | None = None  # set by another thread: fail every row (draining)
        self._cut_lock = threading.Lock()
        self.batches = 0  # admissions of taken items (each a prefill and/or a scoring pass)
        self.decoding = self._new_decoding()  # the rows being generated (worker thread only)
        self._deferred = 0  # decode steps run while inputs were waiting to join

    def run(self, stop: threading.Event) -> None:
        """Calibrate, then cycle until ``stop`` is set (the worker thread); a failing cycle fails
        only its rows."""
        try:
            with torch.inference_mode():
                self.calibrate()
        except Exception as err:  # no estimate: admission falls back to max_queue alone
            log_event(logging.WARNING, "calibration_failed", f"calibration failed: {err!r}")
        while not stop.is_set():
            with self._cut_lock:
                cut, self._cut = self._cut, None
            if cut is not None:
                self.abandon(cut)
            taken: list[WorkItem] = []
            try:
                with torch.inference_mode():
                    self.cycle(taken)
            except Exception as err:  # these rows fail, the server keeps serving
                self.abandon(self._batch_failed(err, list(taken) + self.held), taken)

    @staticmethod
    def _batch_failed(err: Exception, items: list[WorkItem]) -> ServeError:
        """Log a failed batch with its inputs' tasks (and traceback); the error to answer with."""
        log_event(
            logging.ERROR,
            "batch_failed",
            f"a batch failed: {err!r}",
            exc_info=True,
            inputs=len(items),
            tasks=sorted({it.task.name for it in items}),
        )
        return ServeError(500, "internal_error", f"the batch failed: {err!r}")

    def cut(self, err: ServeError) -> None:
        """Ask the worker to fail every row it holds with ``err`` before its next cycle."""
        with self._cut_lock:
            self._cut = err

    def calibrate(self, tokens: int = 32, steps: int = 3) -> WorkRates | None:
        """Measure the speed admission estimates waits from: one prefill of ``max_batch`` rows
        of ``tokens`` tokens and ``steps`` decode steps of them (no soft prompt). Real traffic
        refines both figures afterwards."""
        batch = DecodeBatch(self.backbone.model, -1, self.tokenizer.pad_token_id)  # never ends
        rows = [[self.tokenizer.pad_token_id or 0] * tokens] * self.max_batch
        start = time.perf_counter()
        batch.add(None, rows, [steps + 1] * self.max_batch, tags=list(range(self.max_batch)))
        self.prefill_s = (time.perf_counter() - start) / (tokens * self.max_batch)
        start = time.perf_counter()
        for _ in range(steps):
            batch.step()
        self.step_s = (time.perf_counter() - start) / steps
        return self._publish_rates()

    def _publish_rates(self) -> WorkRates:
        rates = WorkRates(self.prefill_s, self.step_s, self.max_batch)
        self.admission.set_rates(rates)
        return rates

    def _measured(self, name: str, value: float, weight: float = 0.1) -> None:
        """Fold a measurement into the moving average ``name`` and tell admission."""
        old = getattr(self, name)
        setattr(self, name, value if old is None else (1 - weight) * old + weight * value)
        if self.prefill_s is not None and self.step_s is not None:
            self._publish_rates()

    @property
    def held(self) -> list[WorkItem]:
        """The items taken and not yet answered: decoding or being scored."""
        return self.decoding.live_tags + [it for job in self.jobs for it in job.items]

    def cycle(self, taken: list[WorkItem]) -> None:
        """Continuous batching: take queued inputs, run their jobs, decode one step, advance a
        long job.

        New generation rows are prefilled (from the prompt KV caches) and join the rows already
        decoding; a finished row leaves at once and its request is answered, so the batch stays
        full while requests keep coming. ``taken`` collects the items taken, so that a failure
        can answer them.
        """
        self._drop_given_up()
        running = self.decoding
        free = self.max_batch - len(self.held)
        if (
            running
            and free > 0
            and self.admission.waiting() < min(free, self.prefill_group)
            and self._deferred < self.max_defer_steps
        ):
            self._deferred += 1  # let a few more arrive and prefill them together
        elif free > 0:
            self._deferred = 0
            idle = not running and not self.jobs
            taken += self.admission.take(
                free, wait=idle, wait_ms=self.wait_ms, max_tokens=self.prefill_tokens
            )
        if taken:
            self.batches += 1
            for (scoring, _), items in self._groups(self._answer_units(taken)).items():
                job = self._job(items, scoring)
                if job.long:
                    self.jobs.append(job)
                else:  # one cycle's worth: at once
                    while not self._advance(job):
                        pass
            taken.clear()
        if running:
            rows, start = len(running), time.perf_counter()
            self._answer_generations(running.step())
            self._steps_since_long += 1
            if rows >= max(1, self.max_batch // 2):  # a step of a batch near full
                self._measured("step_s", time.perf_counter() - start)
        # long passes wait only for rows of short jobs (a long request's own rows do not hold it)
        held_back = any(not it.long for it in running.live_tags)
        if self.jobs and (not held_back or self._steps_since_long >= self.long_pass_every):
            self._steps_since_long = 0
            if self._advance(self.jobs[0]):
                self.jobs.pop(0)

    def _job(self, items: list[WorkItem], scoring: bool) -> _Job:
        fed = sum(it.work()[0] for it in items)
        prompt = items[0].task.prompt.shape[0]  # cached per task: not fed again
        long = fed - prompt * len(items) > self.prefill_tokens
        if scoring:
            passes = self._score_passes(items)
        else:
            passes = self.decoding.prefill_passes(
                torch.stack([it.task.prompt for it in items]),  # (B, P, D)
                [it.input_ids for it in items],
                [it.task.key for it in items],
                max_tokens=self.prefill_tokens,
            )
        for it in items:
            it.long = long
        return _Job(items, passes, scoring, fed, long)

    def _advance(self, job: _Job) -> bool:
        """Run ``job``'s next pass; when it has none left, answer (or join) its items. Returns
        whether the job is done. A failing job fails only its own items."""
        start = time.perf_counter()
        try:
            next(job.passes)
            job.seconds += time.perf_counter() - start
            return False
        except StopIteration as done:
            result = done.value
        except Exception as err:
            self._fail(job.items, self._batch_failed(err, job.items))
            return True
        if job.scoring:
            self._answer_scores(job.items, result)
        else:
            logits, cache, mask, _ = result
            self._answer_generations(
                self.decoding.join(
                    logits, cache, mask, [it.max_new_tokens for it in job.items], job.items
                )
            )
        job.seconds += time.perf_counter() - start
        self._measured("prefill_s", job.seconds / max(1, job.fed))
        return True

    def _drop_given_up(self) -> None:
        """Stop working for requests already answered (timed out): free their rows and the
        jobs all of whose items gave up."""
        gone = {id(it) for it in self.held if it.given_up}
        if not gone:
            return
        dropped = self.decoding.drop(gone)
        for job in [j for j in self.jobs if all(id(it) in gone for it in j.items)]:
            self.jobs.remove(job)
            dropped += job.items
        self._fail(dropped, gave_up())

    def run_batch(self, batch: list[WorkItem]) -> None:
        """Run one mixed-task batch to completion (static batching) and resolve every item."""
        for (scoring, _), items in self._groups(self._answer_units(batch)).items():
            if scoring:
                self._answer_scores(items, self.score(items))
            else:
                self._answer_generations(list(zip(items, self.generate(items), strict=True)))

    def abandon(self, err: ServeError, taken: Sequence[WorkItem] = ()) -> None:
        """Fail ``taken`` and every item held (decoding, in a job) with ``err``; start empty."""
        self._fail(list(taken) + self.held, err)
        self.decoding = self._new_decoding()
        self.jobs = []

    def generate(self, items: list[WorkItem]) -> list[list[int]]:
        """Greedy token ids of each item (EOS excluded), all rows together."""
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

    def score(self, items: list[WorkItem]) -> list[list[float]]:
        """The log-likelihood of each item's candidates (all passes at once)."""
        return run_passes(self._score_passes(items))

    def _score_passes(self, items: list[WorkItem]) -> Generator[None, None, list[list[float]]]:
        """The scoring of ``items``, one forward pass per ``next()``."""
        prompts = torch.stack([it.task.prompt for it in items])  # (B, P, D)
        return option_logprob_passes(
            self.backbone.model,
            prompts,
            [it.input_ids for it in items],
            [it.option_ids or encode_options(self.tokenizer, it.candidates) for it in items],
            length_normalize=self.length_normalize,
            prompt_cache=self.prompt_cache,
            task_keys=[it.task.key for it in items],
            pad_token_id=self.tokenizer.pad_token_id,
            max_chunk_bytes=self.scoring_batch_bytes,
            max_prefill_tokens=self.prefill_tokens,
        )

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

    @staticmethod
    def _fail(items: list[WorkItem], err: ServeError) -> None:
        for it in items:
            if not it.future.done():
                it.future.set_exception(err)

    def _answer_generations(self, finished: list[tuple[WorkItem, list[int]]]) -> None:
        for it, ids in finished:
            self._resolve(
                it,
                self.tokenizer.decode(ids, skip_special_tokens=True).strip(),
                "generate",
                len(ids),
                None,
            )

    def _answer_units(self, items: list[WorkItem]) -> list[WorkItem]:
        """Answer the items asked through units (scored when the item is, else generated, all
        units together by ``max_batch`` rows) and merge each; return the other items."""
        rest: list[WorkItem] = []
        asked: list[tuple[WorkItem, list[WorkItem]]] = []
        for it in items:
            units = it.task.units(it.record)
            if units is None:
                rest.append(it)
                continue
            scoring = it.candidates is not None
            rows = [
                WorkItem(
                    it.task,
                    unit,
                    encode_prompt(self.tokenizer, it.task.example(0, unit)),
                    it.task.candidates(unit) if scoring else None,
                    it.max_new_tokens,
                )
                for unit in units
            ]
            asked.append((it, rows))
        answers: dict[int, tuple[str, int]] = {}  # id(row) -> (answer text, generated tokens)
        for (scoring, _), rows in self._groups([r for _, rs in asked for r in rs]).items():
            for start in range(0, len(rows), self.max_batch):
                chunk = rows[start : start + self.max_batch]
                if scoring:
                    for row, scores in zip(chunk, self.score(chunk), strict=True):
                        best = max(range(len(scores)), key=scores.__getitem__)
                        answers[id(row)] = (row.candidates[best], 0)
                else:
                    for row, ids in zip(chunk, self.generate(chunk), strict=True):
                        text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
                        answers[id(row)] = (text, len(ids))
        for it, rows in asked:
            got = [answers[id(r)] for r in rows]
            self._resolve(
                it,
                "",
                "score" if it.candidates is not None else "generate",
                sum(n for _, n in got),
                None,
                units=([r.record for r in rows], [t for t, _ in got]),
            )
        return rest

    def _answer_scores(self, items: list[WorkItem], scored: list[list[float]]) -> None:
        for it, scores in zip(items, scored, strict=True):
            best = max(range(len(scores)), key=scores.__getitem__)
            self._resolve(
                it, it.candidates[best], "score", 0, dict(zip(it.candidates, scores, strict=True))
            )

    @staticmethod
    def _resolve(
        item: WorkItem,
        text: str,
        mode: str,
        tokens: int,
        scores: dict[str, float] | None,
        units: tuple[list[dict[str, Any]], list[str]] | None = None,
    ) -> None:
        """Answer ``item`` with ``text`` parsed; with ``units`` (unit records and their answers),
        with their merged answer, written as the record's target text."""
        try:
            if units is None:
                prediction, ok = item.task.structure(text, item.record)
            else:
                prediction, ok, text = item.task.merge_units(item.record, *units)
        except Exception as err:  # parse() must never raise; if it does, answer with the raw text
            log_event(
                logging.WARNING,
                "parse_failed",
                f"parse failed for task {item.task.name}: {err!r}",
                task=item.task.name,
            )
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
