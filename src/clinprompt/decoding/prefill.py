"""Prefill: run soft prompts and unpadded token rows through the model into a KV cache.

The layout matches training exactly: row b is ``prompt_b (P) ⊕ left padding ⊕ input_ids[b]`` fed
through ``inputs_embeds``, with position ids counted from the attention mask (so the padding never
shifts a position), and generation starts right after the
:func:`clinprompt.data.collate.encode_prompt` ids, i.e. where training placed
``" " + target + EOS``. With a :class:`~clinprompt.decoding.prompt_cache.PromptKVCache`, each row
starts from its task's cached prompt (and declared prefix) and only the rest of the row is fed.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TypeVar

import torch
from transformers import DynamicCache, PreTrainedModel

from clinprompt.decoding.prompt_cache import PromptKVCache
from clinprompt.prompts.injection import inject_prompt

__all__ = ["check_batch", "prefill", "prefill_passes", "run_passes"]

T = TypeVar("T")


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


def check_batch(
    prompts: torch.Tensor | None,
    input_ids: Sequence[Sequence[int]],
    task_keys: Sequence[str] | None,
) -> None:
    """Raise ``ValueError`` naming the problem unless the rows, prompts and keys agree."""
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
    return run_passes(
        prefill_passes(model, prompts, rows, pad_token_id, prompt_cache, task_keys, logits_to_keep)
    )


def run_passes(passes: Generator[None, None, T]) -> T:
    """Run every pass left of a pass generator (:func:`prefill_passes`,
    :func:`~clinprompt.decoding.scoring.option_logprob_passes`) and return its result."""
    while True:
        try:
            next(passes)
        except StopIteration as done:
            return done.value


def prefill_passes(
    model: PreTrainedModel,
    prompts: torch.Tensor | None,
    rows: Sequence[Sequence[int]],
    pad_token_id: int,
    prompt_cache: PromptKVCache | None,
    task_keys: Sequence[str] | None,
    logits_to_keep: int,
    max_tokens: int | None = None,
) -> Generator[None, None, tuple[torch.Tensor, DynamicCache, torch.Tensor, torch.Tensor]]:
    """:func:`prefill` in passes of at most ``max_tokens`` fed positions (padding included),
    a generator that yields between passes and returns what :func:`prefill` returns.

    The padded batch is cut into consecutive column spans, each fed over the cache of the ones
    before it with the same mask and positions, so the cache and logits equal one pass's (to
    float rounding). A server prefills a long input this way between decode steps. ``None``:
    one pass.
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
        feed, before = {"input_ids": ids}, cache_mask.shape[1]
    else:
        ids, mask = _left_pad(rows, pad_token_id, device)
        x = inject_prompt(model, prompts, ids, mask)
        cache = DynamicCache(config=model.config)
        full_mask, position_ids = x.attention_mask, x.position_ids
        feed, before = {"inputs_embeds": x.inputs_embeds}, 0
    width = full_mask.shape[1] - before
    spans = _spans(width, len(rows), logits_to_keep, max_tokens)
    for n, (a, b) in enumerate(spans):
        out = model(
            **{k: v[:, a:b] for k, v in feed.items()},
            attention_mask=full_mask[:, : before + b],
            position_ids=position_ids[:, a:b],
            cache=cache,
            use_cache=True,
            logits_to_keep=logits_to_keep if n == len(spans) - 1 else 1,
        )
        cache = out.cache
        if n < len(spans) - 1:
            yield
    return out.logits, out.cache, full_mask, ids


def _spans(width: int, rows: int, keep: int, max_tokens: int | None) -> list[tuple[int, int]]:
    """Column spans of at most ``max_tokens // rows`` columns (at least one), the last one at
    least ``keep`` wide (it gives the logits)."""
    if max_tokens is None or width * rows <= max_tokens:
        return [(0, width)]
    cols = max(1, max_tokens // rows)
    cuts = list(range(0, width, cols))
    cuts[-1] = min(cuts[-1], max(0, width - keep))
    cuts = sorted(set(cuts))
    return list(zip(cuts, [*cuts[1:], width], strict=True))
