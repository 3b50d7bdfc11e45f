"""Continuous batching: rows decoded greedily together, joining and leaving at any step.

Prompt KV reuse: positions ``0..P-1`` hold the soft prompt in every row and attend only to each
other (causal attention), so their keys/values depend on the task's prompt alone — not on the
input, the padding or the batch. Joining rows start from their tasks' cached prompts (and declared
instruction prefixes, :class:`~clinprompt.decoding.prompt_cache.PromptKVCache`), so the batch
prefills only what differs between requests.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel

from clinprompt.decoding.prefill import check_batch, prefill, prefill_passes
from clinprompt.decoding.prompt_cache import PromptKVCache
from clinprompt.decoding.reserved_cache import reserved_cache

__all__ = ["DecodeBatch"]


class DecodeBatch:
    """Rows decoded greedily together; rows join (prefilled) and leave (EOS, budget) at any step.

    The batch holds one KV cache (slots, L) with a mask. Joining rows are prefilled together; a
    row that finishes leaves at once, but its slot stays in the cache until a joining row takes
    it over (its prefilled keys/values written right-aligned into the slot, the rest masked) or
    until enough slots are free that compacting them pays. So a server with steady traffic
    rarely copies its cache: neither per token
    (:class:`~clinprompt.decoding.reserved_cache.ReservedLayer`) nor per arriving or
    departing request. When slots do not suffice, the new rows are merged in, the shorter side
    left-padded with masked slots. In every case each row keeps exactly the keys, values and
    positions it would have alone. This is what the server's continuous batching runs, and what
    :func:`~clinprompt.decoding.generate.greedy_generate` runs with all rows joining at once.

    Args:
        model: a frozen causal LM (full-attention layers; sliding-window caches are not merged).
        eos_token_id: ends a row (not included in its output).
        pad_token_id: fills paddings.
        prompt_cache: per-task prompt caches for joining rows (with ``task_keys`` in :meth:`add`).
        compact_ratio: compact when free slots exceed this share of the live rows (a free slot
            still costs its share of every decode step).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        eos_token_id: int,
        pad_token_id: int,
        prompt_cache: PromptKVCache | None = None,
        compact_ratio: float = 0.25,
    ) -> None:
        self.model, self.eos, self.pad, self.prompt_cache = (
            model,
            eos_token_id,
            pad_token_id,
            prompt_cache,
        )
        self.compact_ratio = compact_ratio
        self._reset()

    def _reset(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask = self.positions = self.tokens = None  # per slot: (S, L), (S, 1), (S,)
        self.alive: list[bool] = []
        self.tags: list[Any] = []
        self.outputs: list[list[int]] = []
        self.limits: list[int] = []

    def __len__(self) -> int:
        """The number of live rows."""
        return sum(self.alive)

    @property
    def live_tags(self) -> list[Any]:
        """The tags of the rows still decoding."""
        return [t for t, a in zip(self.tags, self.alive, strict=True) if a]

    @property
    def slots(self) -> int:
        """Rows in the cache, live or free."""
        return len(self.alive)

    @torch.no_grad()
    def add(
        self,
        prompts: torch.Tensor | None,
        input_ids: list[list[int]],
        max_new_tokens: list[int],
        tags: list[Any],
        task_keys: list[str] | None = None,
    ) -> list[tuple[Any, list[int]]]:
        """Prefill new rows and take their first token; returns the rows already finished."""
        check_batch(prompts, input_ids, task_keys)
        logits, cache, mask, _ = prefill(
            self.model, prompts, input_ids, self.pad, self.prompt_cache, task_keys, 1
        )
        return self.join(logits, cache, mask, max_new_tokens, tags)

    def prefill_passes(
        self,
        prompts: torch.Tensor | None,
        input_ids: list[list[int]],
        task_keys: list[str] | None = None,
        max_tokens: int | None = None,
    ) -> Generator[None, None, tuple[torch.Tensor, DynamicCache, torch.Tensor, torch.Tensor]]:
        """The prefill of :meth:`add` in passes of at most ``max_tokens`` positions (see
        :func:`~clinprompt.decoding.prefill.prefill_passes`); hand its result to :meth:`join`."""
        check_batch(prompts, input_ids, task_keys)
        return prefill_passes(
            self.model, prompts, input_ids, self.pad, self.prompt_cache, task_keys, 1, max_tokens
        )

    @torch.no_grad()
    def join(
        self,
        logits: torch.Tensor,
        cache: DynamicCache,
        mask: torch.Tensor,
        max_new_tokens: list[int],
        tags: list[Any],
    ) -> list[tuple[Any, list[int]]]:
        """Add prefilled rows (the logits, cache and mask of a prefill) and take their first
        token; returns the rows already finished."""
        positions = mask.sum(-1, keepdim=True) - 1  # of each row's last token
        tokens = logits[:, -1].argmax(-1)
        n, width = mask.shape
        reserve = max(max_new_tokens, default=1)
        free = [i for i, a in enumerate(self.alive) if not a]
        reuse = min(n, len(free)) if free and width <= self.mask.shape[1] else 0
        slots = free[:reuse]
        if reuse:  # take over free slots in place: right-aligned, the rest masked
            index = torch.tensor(slots, device=self.mask.device)
            for old, new in zip(self.cache.layers, cache.layers, strict=True):
                old.write_rows(index, new.keys[:reuse], new.values[:reuse])
            self.mask[index] = F.pad(mask[:reuse], (self.mask.shape[1] - width, 0))
            self.positions[index] = positions[:reuse]
            self.tokens[index] = tokens[:reuse]
            for j, slot in enumerate(slots):
                self.alive[slot], self.tags[slot] = True, tags[j]
                self.outputs[slot], self.limits[slot] = [], max_new_tokens[j]
        if reuse < n:  # the rest joins after the last slot
            rest, first = slice(reuse, n), self.slots
            layers = [(layer.keys[rest], layer.values[rest]) for layer in cache.layers]
            self._merge(layers, mask[rest], positions[rest], tokens[rest], reserve)
            self.alive += [True] * (n - reuse)
            self.tags += list(tags[reuse:])
            self.outputs += [[] for _ in range(n - reuse)]
            self.limits += list(max_new_tokens[reuse:])
            slots += list(range(first, self.slots))
        fresh = torch.zeros(self.slots, dtype=torch.bool)
        fresh[slots] = True
        return self._accept(fresh)

    @torch.no_grad()
    def step(self) -> list[tuple[Any, list[int]]]:
        """Decode one token for every live row; returns the rows that finished."""
        live = len(self)
        if not live:
            return []
        if self.slots - live > self.compact_ratio * live:
            self._compact()
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.slots, 1)], dim=1)
        self.positions = self.positions + 1
        out = self.model(
            input_ids=self.tokens.unsqueeze(1),
            attention_mask=self.mask,
            position_ids=self.positions,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache, self.tokens = out.cache, out.logits[:, -1].argmax(-1)
        return self._accept(torch.tensor(self.alive, dtype=torch.bool))

    def drop(self, tags: set[int]) -> list[Any]:
        """Free the live rows whose tag's ``id()`` is in ``tags`` (their requests gave up);
        returns their tags. Their slots are reused like those of finished rows."""
        dropped = []
        for i, tag in enumerate(self.tags):
            if self.alive[i] and id(tag) in tags:
                dropped.append(tag)
                self._free(i)
        if dropped:
            self._after_leaving()
        return dropped

    def _free(self, i: int) -> None:
        """Mark slot ``i`` free (its row left)."""
        self.alive[i], self.tags[i], self.outputs[i] = False, None, []
        self.tokens[i] = self.pad

    def _after_leaving(self) -> None:
        """After rows left: start empty when none is live, else drop the unused leading slots."""
        if not any(self.alive):
            self._reset()
        else:
            self._trim()

    def _accept(self, fresh: torch.Tensor) -> list[tuple[Any, list[int]]]:
        """Append each fresh row's new token; free and return the rows that finished."""
        finished = []
        for i, tok in enumerate(self.tokens.tolist()):
            if not fresh[i]:
                continue
            if tok != self.eos and self.limits[i] > len(self.outputs[i]):
                self.outputs[i].append(tok)
            if tok == self.eos or len(self.outputs[i]) >= self.limits[i]:
                finished.append((self.tags[i], self.outputs[i]))
                self._free(i)
        if finished:
            self._after_leaving()
        return finished

    def _compact(self) -> None:
        """Drop the free slots (one copy of the cache)."""
        keep = [i for i, a in enumerate(self.alive) if a]
        if len(keep) == self.slots:
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions, self.tokens = (
            self.mask[index],
            self.positions[index],
            self.tokens[index],
        )
        self.alive, self.tags, self.outputs, self.limits = (
            [x[i] for i in keep] for x in (self.alive, self.tags, self.outputs, self.limits)
        )
        self._trim()

    def _merge(
        self,
        layers: list[tuple[torch.Tensor, torch.Tensor]],
        mask: torch.Tensor,
        positions: torch.Tensor,
        tokens: torch.Tensor,
        reserve: int,
    ) -> None:
        """Append rows to the batch, left-padding the shorter cache with masked slots."""
        if self.cache is None:  # the first rows
            self.cache = reserved_cache(layers, self.model.config, reserve)
            self.mask, self.positions, self.tokens = mask, positions, tokens
            return
        width = max(self.mask.shape[1], mask.shape[1])
        a, b = width - self.mask.shape[1], width - mask.shape[1]
        data = [
            (
                torch.cat([F.pad(x.keys, (0, 0, a, 0)), F.pad(k, (0, 0, b, 0))]),
                torch.cat([F.pad(x.values, (0, 0, a, 0)), F.pad(v, (0, 0, b, 0))]),
            )
            for x, (k, v) in zip(self.cache.layers, layers, strict=True)
        ]  # per layer: (S_old + S_new, H_kv, width, head_dim)
        left = max(
            (
                lim - len(out)
                for lim, out, alive in zip(self.limits, self.outputs, self.alive, strict=True)
                if alive
            ),
            default=0,
        )
        self.cache = reserved_cache(data, self.model.config, max(reserve, left))
        self.mask = torch.cat([F.pad(self.mask, (a, 0)), F.pad(mask, (b, 0))])
        self.positions = torch.cat([self.positions, positions])
        self.tokens = torch.cat([self.tokens, tokens])

    def _trim(self) -> None:
        """Drop leading slots no live row attends to (left by rows that left); no copy."""
        used = self.mask[torch.tensor(self.alive, device=self.mask.device)].any(0).nonzero()
        first = int(used[0]) if used.numel() else 0
        if first > 0:
            for layer in self.cache.layers:
                layer.drop_front(first)
            self.mask = self.mask[:, first:]
