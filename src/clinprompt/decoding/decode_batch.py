"""Batched greedy decoding and option scoring for soft-prompted inputs.

Shared by ``clinprompt evaluate`` and the server. The layout matches training exactly: row b is
``prompt_b (P) ⊕ left padding ⊕ input_ids[b]`` fed through ``inputs_embeds``, with position ids
counted from the attention mask (so the padding never shifts a position), and generation starts
right after the :func:`clinprompt.data.collate.encode_prompt` ids, i.e. where training placed
``" " + target + EOS``.

Prompt KV reuse: positions ``0..P-1`` hold the soft prompt in every row and attend only to each
other (causal attention), so their keys/values depend on the task's prompt alone — not on the
input, the padding or the batch. :class:`PromptKVCache` computes them once per task and every
batch (mixed tasks included) starts from the stacked per-task caches; only the input tokens are
prefilled. A task may also declare a token prefix every one of its rows starts with (the server
declares the instruction head of ``encode_prompt``): it is cached with the prompt, at the same
positions, so the batch prefills only what differs between requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from clinprompt.decoding.prompt_cache import PromptKVCache
from clinprompt.prompts.injection import inject_prompt

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "DecodeBatch",
    "ReservedLayer",
    "PromptKVCache",
    "encode_options",
    "greedy_generate",
    "option_logprobs",
    "prefill",
]

# Generation budget per task type where a caller does not say (evaluation and serving).
DEFAULT_MAX_NEW_TOKENS = {"nli": 8, "qa": 48, "ner": 96, "re": 96, "sum": 96}


def _left_pad(
    input_ids: Sequence[Sequence[int]], pad_token_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and mask, left-padded to the longest row."""
    width = max(len(x) for x in input_ids)
    ids = [[pad_token_id] * (width - len(x)) + list(x) for x in input_ids]
    mask = [[0] * (width - len(x)) + [1] * len(x) for x in input_ids]
    return (
        torch.tensor(ids, dtype=torch.long, device=device),
        torch.tensor(mask, dtype=torch.long, device=device),
    )


def _check_batch(
    prompts: torch.Tensor | None,
    input_ids: Sequence[Sequence[int]],
    task_keys: Sequence[str] | None,
) -> None:
    if not input_ids:
        raise ValueError("input_ids is empty; pass at least one row")
    if any(len(x) == 0 for x in input_ids):
        raise ValueError("every row of input_ids needs at least one token")
    if prompts is not None and (prompts.dim() != 3 or prompts.shape[0] != len(input_ids)):
        raise ValueError(
            f"prompts must be (B={len(input_ids)}, P, D); got shape {tuple(prompts.shape)}"
        )
    if task_keys is not None and len(task_keys) != len(input_ids):
        raise ValueError(f"got {len(task_keys)} task keys for {len(input_ids)} rows")


def prefill(
    model: PreTrainedModel,
    prompts: torch.Tensor | None,
    rows: Sequence[Sequence[int]],
    pad_token_id: int,
    prompt_cache: PromptKVCache | None,
    task_keys: Sequence[str] | None,
    logits_to_keep: int,
) -> tuple[torch.Tensor, DynamicCache, torch.Tensor, torch.Tensor]:
    """Run the prompts and the (unpadded) rows through the model, filling a KV cache.

    With a prompt cache and task keys, each row starts from its task's cached prompt (and
    declared prefix) and only the rest of the row is fed; otherwise the prompt is injected.

    Returns:
        (logits (B, keep, V), the KV cache, the attention mask over all its positions (B, L),
        the token ids fed (B, T), left-padded).
    """
    device = model.get_input_embeddings().weight.device
    if (
        prompts is not None
        and prompt_cache is not None
        and task_keys is not None
        and prompts.shape[1] > 0
    ):
        cache, cache_mask, tails = prompt_cache.batch(
            task_keys, prompts, rows, min_tail=logits_to_keep
        )
        ids, mask = _left_pad(tails, pad_token_id, device)
        full_mask = torch.cat([cache_mask.to(device), mask], dim=1)  # (B, L_max + T)
        cached = cache_mask.sum(-1, keepdim=True).to(device)  # (B, 1) cached positions per row
        position_ids = (cached + mask.cumsum(-1) - 1).clamp(min=0)  # continue after the cache
        out = model(
            input_ids=ids,
            attention_mask=full_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            logits_to_keep=logits_to_keep,
        )
        return out.logits, out.cache, full_mask, ids
    ids, mask = _left_pad(rows, pad_token_id, device)
    x = inject_prompt(model, prompts, ids, mask)
    out = model(
        inputs_embeds=x.inputs_embeds,
        attention_mask=x.attention_mask,
        position_ids=x.position_ids,
        cache=DynamicCache(config=model.config),
        use_cache=True,
        logits_to_keep=logits_to_keep,
    )
    return out.logits, out.cache, x.attention_mask, ids


class ReservedLayer(DynamicLayer):
    """A cache layer with room reserved past its end: a decode step writes in place.

    ``DynamicLayer`` concatenates at every step, copying the whole cache once per token and
    layer (``bench/decode_step.py``: 12% of a batch-32 SmolLM2-135M decode step on CPU; this
    layer makes the step 0.91x as long). This layer keeps its keys and values as the first
    ``length`` slots of a larger buffer and writes new tokens into the free slots; when they
    run out the buffer doubles, so the copies are amortized.
    ``keys``/``values`` stay views of the used slots, as the model expects.

    Args:
        keys, values: (B, H_kv, L, head_dim) the initial contents.
        reserve: free slots to allocate past them.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, reserve: int = 64) -> None:
        super().__init__()
        self.device, self.is_initialized = keys.device, True
        self._place(keys, values, reserve)

    def _place(self, keys: torch.Tensor, values: torch.Tensor, reserve: int) -> None:
        b, h, n, d = keys.shape
        self._kbuf = keys.new_empty(b, h, n + reserve, d)
        self._vbuf = values.new_empty(b, h, n + reserve, d)
        self._kbuf[:, :, :n] = keys
        self._vbuf[:, :, :n] = values
        self._view(0, n)

    def _view(self, start: int, end: int) -> None:
        self._start, self._end = start, end
        self.keys, self.values = self._kbuf[:, :, start:end], self._vbuf[:, :, start:end]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        t = key_states.shape[-2]
        if self._end + t > self._kbuf.shape[-2]:
            self._place(self.keys, self.values, max(t, self._end - self._start, 16))
        self._kbuf[:, :, self._end : self._end + t] = key_states
        self._vbuf[:, :, self._end : self._end + t] = value_states
        self._view(self._start, self._end + t)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._end - self._start

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._kbuf, self._vbuf = self._kbuf[indices], self._vbuf[indices]
        self._view(self._start, self._end)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._kbuf = self._kbuf.repeat_interleave(repeats, dim=0)
        self._vbuf = self._vbuf.repeat_interleave(repeats, dim=0)
        self._view(self._start, self._end)

    def write_rows(self, rows: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Overwrite batch ``rows`` with ``keys``/``values`` (R, H_kv, L, hd), right-aligned to the end."""
        n = keys.shape[-2]
        self._kbuf[rows, :, self._end - n : self._end] = keys
        self._vbuf[rows, :, self._end - n : self._end] = values

    def drop_front(self, n: int) -> None:
        """Forget the first ``n`` used slots (no copy)."""
        self._view(self._start + n, self._end)

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        self._view(self._start, self._end + tokens_to_remove)


def reserved_cache(
    layers: Sequence[tuple[torch.Tensor, torch.Tensor]], config: Any, reserve: int
) -> DynamicCache:
    """A ``DynamicCache`` holding ``layers`` (keys, values) in :class:`ReservedLayer` objects."""
    cache = DynamicCache(config=config)
    cache.layers = [ReservedLayer(k, v, reserve) for k, v in layers]
    return cache


class DecodeBatch:
    """Rows decoded greedily together; rows join (prefilled) and leave (EOS, budget) at any step.

    The batch holds one KV cache (slots, L) with a mask. Joining rows are prefilled together; a
    row that finishes leaves at once, but its slot stays in the cache until a joining row takes
    it over (its prefilled keys/values written right-aligned into the slot, the rest masked) or
    until enough slots are free that compacting them pays. So a server with steady traffic
    rarely copies its cache: neither per token (:class:`ReservedLayer`) nor per arriving or
    departing request. When slots do not suffice, the new rows are merged in, the shorter side
    left-padded with masked slots. In every case each row keeps exactly the keys, values and
    positions it would have alone. This is what the server's continuous batching runs, and what
    :func:`greedy_generate` runs with all rows joining at once.

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
        _check_batch(prompts, input_ids, task_keys)
        logits, cache, mask, _ = prefill(
            self.model, prompts, input_ids, self.pad, self.prompt_cache, task_keys, 1
        )
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
                self.alive[i], self.tags[i], self.outputs[i] = False, None, []
                self.tokens[i] = self.pad
        if finished:
            if not any(self.alive):
                self._reset()
            else:
                self._trim()
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


@torch.no_grad()
def greedy_generate(
    model: PreTrainedModel,
    prompts: torch.Tensor | None,
    input_ids: list[list[int]],
    max_new_tokens: int | list[int],
    eos_token_id: int,
    pad_token_id: int,
    prompt_cache: PromptKVCache | None = None,
    task_keys: list[str] | None = None,
) -> list[list[int]]:
    """Greedy decoding of a batch of soft-prompted inputs, stopping per row at EOS.

    Args:
        model: a frozen causal LM.
        prompts: (B, P, D) the prompt of each row (mixed tasks allowed), or None for no prompt.
        input_ids: B rows of prompt token ids (from ``encode_prompt``), unpadded.
        max_new_tokens: the most tokens generated per row (one int, or one per row).
        eos_token_id: stops a row; it is not included in the output.
        pad_token_id: fills the left padding.
        prompt_cache: reuse each task's prompt keys/values (needs ``task_keys``); the tokens are
            the same as without it.
        task_keys: B keys naming each row's prompt in ``prompt_cache``.

    Returns:
        B lists of generated token ids (without the EOS).
    """
    _check_batch(prompts, input_ids, task_keys)
    bsz = len(input_ids)
    limits = [max_new_tokens] * bsz if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(limits) != bsz:
        raise ValueError(f"got {len(limits)} max_new_tokens values for {bsz} rows")
    outputs: list[list[int]] = [[] for _ in range(bsz)]
    if max(limits) <= 0:
        return outputs
    batch = DecodeBatch(model, eos_token_id, pad_token_id, prompt_cache)
    finished = batch.add(prompts, input_ids, limits, list(range(bsz)), task_keys)
    while batch:
        finished += batch.step()
    for row, out in finished:
        outputs[row] = out
    return outputs


def encode_options(tokenizer, candidates: Sequence[str]) -> list[list[int]]:
    """Token ids of candidate answers exactly as training saw targets: ``" " + c`` then EOS."""
    return [
        tokenizer(" " + c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for c in candidates
    ]


@torch.no_grad()
def option_logprobs(
    model: PreTrainedModel,
    prompts: torch.Tensor | None,
    input_ids: list[list[int]],
    options: list[list[list[int]]],
    length_normalize: bool = False,
    prompt_cache: PromptKVCache | None = None,
    task_keys: list[str] | None = None,
    pad_token_id: int = 0,
) -> list[list[float]]:
    """Log-likelihood of each candidate continuation: the input once, then all candidates at once.

    Each input is prefilled once (from the prompt cache where given); its key/value cache is then
    repeated once per candidate and every candidate's tokens are fed together, right-padded, in
    one more forward. A multiple-choice question with a long stem thus costs one pass over the
    stem rather than one per option, and the scores equal those of scoring each
    ``prompt ⊕ input ⊕ option`` row on its own.

    Args:
        model: a frozen causal LM.
        prompts: (B, P, D) or None.
        input_ids: B rows of prompt token ids.
        options: per example, its candidates' token ids (see :func:`encode_options`).
        length_normalize: the mean log-probability per token instead of the sum.
        prompt_cache, task_keys: reuse per-task prompt keys/values (as :func:`greedy_generate`).
        pad_token_id: fills the padding (never attended).

    Returns:
        Per example, one score per candidate (higher is more likely).
    """
    _check_batch(prompts, input_ids, task_keys)
    if len(options) != len(input_ids):
        raise ValueError(f"got options for {len(options)} examples but {len(input_ids)} rows")
    for b, cands in enumerate(options):
        if not cands or any(len(c) == 0 for c in cands):
            raise ValueError(f"example {b}: every example needs at least one non-empty candidate")
    cands = [list(c) for cs in options for c in cs]
    owner = [b for b, cs in enumerate(options) for _ in cs]
    # 1. Each input once: its cache, and the distribution of every candidate's first token.
    logits, cache, mask, _ = prefill(
        model, prompts, input_ids, pad_token_id, prompt_cache, task_keys, 1
    )
    device = logits.device
    index = torch.tensor(owner, device=device)
    rest = max(len(c) for c in cands) - 1
    padded = torch.tensor([c + [pad_token_id] * (rest + 1 - len(c)) for c in cands], device=device)
    totals = logits[:, -1].float().log_softmax(-1)[index, padded[:, 0]]  # (N,) first tokens
    # 2. The rest of every candidate in one forward over the repeated caches.
    if rest > 0:
        cache.batch_select_indices(index)  # row n continues its input's cache
        lengths = torch.tensor([len(c) for c in cands], device=device)
        valid = (torch.arange(rest, device=device) < (lengths - 1).unsqueeze(1)).long()  # (N, rest)
        base = mask[index]
        positions = base.sum(-1, keepdim=True) + torch.arange(
            rest, device=device
        )  # after the input
        out = model(
            input_ids=padded[:, :-1],
            attention_mask=torch.cat([base, valid], dim=1),
            position_ids=positions,
            cache=cache,
            use_cache=True,
        )
        logprobs = out.logits.float().log_softmax(-1)  # (N, rest, V): token j predicts j+1
        picked = logprobs.gather(-1, padded[:, 1:].unsqueeze(-1)).squeeze(-1)  # (N, rest)
        totals = totals + (picked * valid).sum(-1)
    scores: list[list[float]] = [[] for _ in input_ids]
    for b, cand, total in zip(owner, cands, totals.tolist(), strict=True):
        scores[b].append(total / len(cand) if length_normalize else total)
    return scores
