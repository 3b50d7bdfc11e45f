"""The worker loop: continuous batching of admitted items across tasks, and their answers.

A worker thread runs a :class:`~clinprompt.decoding.DecodeBatch`: before every decode step it
takes queued items (waiting up to ``wait_ms`` to gather them when idle) up to ``max_batch`` rows,
prefilling them together from the per-task prompt KV caches, whatever their tasks; a row that
finishes leaves at once and its future resolves. Classification items (records with candidates)
are scored on arrival by :func:`~clinprompt.decoding.option_logprobs`, in chunks of candidates
whose memory fits ``scoring_batch_bytes``. An item whose task answers it through several units
(pair-given RE: one question per ordered entity pair) is answered on arrival too: its units are
scored (or generated) together, ``max_batch`` rows at a time, and merged into one answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
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
from clinprompt.serve.admission import Admission, ServeError, WorkItem
from clinprompt.serve.logs import log_event

__all__ = ["Scheduler"]


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
    ) -> None:
        self.backbone = backbone
        self.tokenizer = backbone.tokenizer
        self.prompt_cache = prompt_cache
        self.admission = admission
        self.max_batch, self.wait_ms = max_batch, wait_ms
        self.prefill_group, self.max_defer_steps = prefill_group, max_defer_steps
        self.length_normalize = length_normalize
        self.scoring_batch_bytes = scoring_batch_bytes
        self._cut: ServeError | None = None  # set by another thread: fail every row (draining)
        self._cut_lock = threading.Lock()
        self.batches = 0  # admissions of taken items (each a prefill and/or a scoring pass)
        self.decoding = self._new_decoding()  # the rows being generated (worker thread only)
        self._deferred = 0  # decode steps run while inputs were waiting to join

    def run(self, stop: threading.Event) -> None:
        """Cycle until ``stop`` is set (the worker thread); a failing cycle fails only its rows."""
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
                failed = list(taken) + self.decoding.live_tags
                log_event(
                    logging.ERROR,
                    "batch_failed",
                    f"a batch failed: {err!r}",
                    exc_info=True,
                    inputs=len(failed),
                    tasks=sorted({it.task.name for it in failed}),
                )
                self.abandon(ServeError(500, "internal_error", f"the batch failed: {err!r}"), taken)

    def cut(self, err: ServeError) -> None:
        """Ask the worker to fail every row it holds with ``err`` before its next cycle."""
        with self._cut_lock:
            self._cut = err

    def cycle(self, taken: list[WorkItem]) -> None:
        """Continuous batching: admit queued inputs into the running batch, then decode one step.

        New generation rows are prefilled (from the prompt KV caches) and join the rows already
        decoding; a finished row leaves at once and its request is answered, so the batch stays
        full while requests keep coming. Classification inputs are scored in one pass on arrival.
        ``taken`` collects the items taken, so that a failure can answer them.
        """
        running = self.decoding
        free = self.max_batch - len(running)
        if (
            running
            and free > 0
            and self.admission.waiting() < min(free, self.prefill_group)
            and self._deferred < self.max_defer_steps
        ):
            self._deferred += 1  # let a few more arrive and prefill them together
        elif free > 0:
            self._deferred = 0
            taken += self.admission.take(free, wait=not running, wait_ms=self.wait_ms)
        if taken:
            self.batches += 1
            for (scoring, _), items in self._groups(self._answer_units(taken)).items():
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

    def run_batch(self, batch: list[WorkItem]) -> None:
        """Run one mixed-task batch to completion (static batching) and resolve every item."""
        for (scoring, _), items in self._groups(self._answer_units(batch)).items():
            if scoring:
                self._answer_scores(items)
            else:
                self._answer_generations(list(zip(items, self.generate(items), strict=True)))

    def abandon(self, err: ServeError, taken: Sequence[WorkItem] = ()) -> None:
        """Fail ``taken`` and every row still decoding with ``err``; start an empty batch."""
        self._fail(list(taken) + self.decoding.live_tags, err)
        self.decoding = self._new_decoding()

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
        """The log-likelihood of each item's candidates."""
        prompts = torch.stack([it.task.prompt for it in items])  # (B, P, D)
        return option_logprobs(
            self.backbone.model,
            prompts,
            [it.input_ids for it in items],
            [it.option_ids or encode_options(self.tokenizer, it.candidates) for it in items],
            length_normalize=self.length_normalize,
            prompt_cache=self.prompt_cache,
            task_keys=[it.task.key for it in items],
            pad_token_id=self.tokenizer.pad_token_id,
            max_chunk_bytes=self.scoring_batch_bytes,
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

    def _answer_scores(self, items: list[WorkItem]) -> None:
        for it, scores in zip(items, self.score(items), strict=True):
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
