"""Option scoring: the log-likelihood of each candidate answer after a soft-prompted input."""

from __future__ import annotations

from collections.abc import Generator, Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from clinprompt.decoding.prefill import check_batch, prefill_passes, run_passes
from clinprompt.decoding.prompt_cache import PromptKVCache

__all__ = [
    "encode_options",
    "option_chunks",
    "option_logprob_passes",
    "option_logprobs",
]


def encode_options(tokenizer, candidates: Sequence[str]) -> list[list[int]]:
    """Token ids of candidate answers exactly as training saw targets: ``" " + c`` then EOS."""
    return [
        tokenizer(" " + c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for c in candidates
    ]


def option_chunks(
    owners: Sequence[int],
    rests: Sequence[int],
    positions: int,
    row_bytes: int,
    token_bytes: int,
    pair_bytes: int,
    max_bytes: int | None,
) -> list[list[int]]:
    """Consecutive candidates grouped so that each group's packed scoring pass fits ``max_bytes``.

    A pass feeds one row per input it touches, holding that input's candidates of the group end
    to end (see :func:`option_logprobs`). With ``m`` inputs and ``T`` tokens in the longest of
    their rows, it costs ``m * (row_bytes + T * token_bytes + T * (positions + T) * pair_bytes)``:
    each input's copy of its keys/values, per fed token its keys/values and logits, and per
    (query, key) pair the attention's weights and mask. A candidate over the budget on its own
    forms a group alone.

    Args:
        owners: per candidate, its input's index (candidates come grouped by input).
        rests: per candidate, the tokens it feeds after the input (its length minus one).
        positions: the input's cached positions (the keys every fed token attends to).
        row_bytes: the bytes of one input's copy of its keys/values.
        token_bytes: the bytes one fed token adds to its row (keys/values and logits).
        pair_bytes: the bytes of one (query, key) pair of the attention.
        max_bytes: the budget of one pass; None: one group.
    """

    def cost(fed: dict[int, int]) -> int:
        t = max(fed.values())
        return len(fed) * (row_bytes + t * token_bytes + t * (positions + t) * pair_bytes)

    if max_bytes is None:
        return [list(range(len(rests)))] if rests else []
    groups: list[list[int]] = []
    current: list[int] = []
    fed: dict[int, int] = {}  # input -> tokens its row feeds in the current group
    for n, (owner, rest) in enumerate(zip(owners, rests, strict=True)):
        grown = {**fed, owner: fed.get(owner, 0) + rest}
        if current and cost(grown) > max_bytes:
            groups.append(current)
            current, grown = [], {owner: rest}
        current.append(n)
        fed = grown
    if current:
        groups.append(current)
    return groups


def option_logprobs(
    model: PreTrainedModel,
    prompts: torch.Tensor | None,
    input_ids: list[list[int]],
    options: list[list[list[int]]],
    length_normalize: bool = False,
    prompt_cache: PromptKVCache | None = None,
    task_keys: list[str] | None = None,
    pad_token_id: int = 0,
    max_chunk_bytes: int | None = None,
) -> list[list[float]]:
    """Log-likelihood of each candidate continuation: the input once, then its candidates packed.

    Each input is prefilled once (from the prompt cache where given); the distribution after it
    scores every candidate's first token. The rest of an input's candidates is then fed in one
    more forward as *one packed row*, end to end, under an attention mask that lets each
    candidate's tokens see the input and the earlier tokens of the same candidate only, at the
    positions they would have alone. A multiple-choice question thus costs one pass over its
    stem and one short row, not one copy of the stem's keys/values per option, and each score
    equals (to float rounding) that of scoring ``prompt ⊕ input ⊕ option`` on its own.

    With ``max_chunk_bytes``, the candidates are fed in consecutive chunks whose keys/values,
    logits and attention fit that many bytes (estimated from the cache's and the logits' shapes
    and dtypes, see :func:`option_chunks`), so memory is bounded by the budget, not by the
    number of candidates.

    Args:
        model: a frozen causal LM.
        prompts: (B, P, D) or None.
        input_ids: B rows of prompt token ids.
        options: per example, its candidates' token ids (see :func:`encode_options`).
        length_normalize: the mean log-probability per token instead of the sum.
        prompt_cache, task_keys: reuse per-task prompt keys/values (as
            :func:`~clinprompt.decoding.generate.greedy_generate`).
        pad_token_id: fills the padding (never attended).
        max_chunk_bytes: the memory budget of one candidate pass; None: all candidates at once.

    Returns:
        Per example, one score per candidate (higher is more likely).
    """
    passes = option_logprob_passes(
        model,
        prompts,
        input_ids,
        options,
        length_normalize,
        prompt_cache,
        task_keys,
        pad_token_id,
        max_chunk_bytes,
    )
    return run_passes(passes)


@torch.no_grad()
def option_logprob_passes(
    model: PreTrainedModel,
    prompts: torch.Tensor | None,
    input_ids: list[list[int]],
    options: list[list[list[int]]],
    length_normalize: bool = False,
    prompt_cache: PromptKVCache | None = None,
    task_keys: list[str] | None = None,
    pad_token_id: int = 0,
    max_chunk_bytes: int | None = None,
    max_prefill_tokens: int | None = None,
) -> Generator[None, None, list[list[float]]]:
    """:func:`option_logprobs` one forward pass at a time: a generator that runs the prefill,
    then one chunk of candidates, per ``next()``, and returns the scores (``StopIteration.value``).
    With ``max_prefill_tokens``, the prefill too runs in passes of at most that many positions
    (see :func:`~clinprompt.decoding.prefill.prefill_passes`).

    The server interleaves these passes with decode steps, so a long scoring request holds the
    worker for one pass at a time, not for all of them. Nothing runs before the first ``next()``;
    between passes it holds the inputs' key/value cache. Arguments as :func:`option_logprobs`.
    """
    check_batch(prompts, input_ids, task_keys)
    if len(options) != len(input_ids):
        raise ValueError(f"got options for {len(options)} examples but {len(input_ids)} rows")
    for b, cands in enumerate(options):
        if not cands or any(len(c) == 0 for c in cands):
            raise ValueError(f"example {b}: every example needs at least one non-empty candidate")
    cands = [list(c) for cs in options for c in cs]
    owner = [b for b, cs in enumerate(options) for _ in cs]
    # 1. Each input once: its cache, and the distribution of every candidate's first token.
    logits, cache, mask, _ = yield from prefill_passes(
        model, prompts, input_ids, pad_token_id, prompt_cache, task_keys, 1, max_prefill_tokens
    )
    device = logits.device
    first = torch.tensor([c[0] for c in cands], device=device)
    totals = logits[:, -1].float().log_softmax(-1)[torch.tensor(owner, device=device), first]
    yield
    # 2. The rest of the candidates, packed one row per input, a chunk at a time.
    layers = [(layer.keys, layer.values) for layer in cache.layers]  # each (B, H_kv, L, hd)
    kv_token = sum(k[0, :, :1].nbytes + v[0, :, :1].nbytes for k, v in layers)  # one row, one slot
    # per fed token: its keys/values, the logits (model dtype) and an fp32 copy and its gather
    token_bytes = kv_token + logits.shape[-1] * (logits.element_size() + 4)
    pair_bytes = model.config.num_attention_heads * 4 + logits.element_size()  # weights, mask
    rests = [len(c) - 1 for c in cands]
    length = mask.shape[1]
    base_positions = mask.sum(-1)  # (B,) the input's positions: candidates continue after them
    neg = torch.finfo(logits.dtype).min
    for group in option_chunks(
        owner, rests, length, length * kv_token, token_bytes, pair_bytes, max_chunk_bytes
    ):
        group = [n for n in group if rests[n] > 0]
        if not group:
            continue
        inputs = sorted({owner[n] for n in group})
        row_of = {b: r for r, b in enumerate(inputs)}
        fed: list[list[int]] = [[] for _ in inputs]  # per row: the tokens fed
        target: list[list[int]] = [[] for _ in inputs]  # per row: the token each one predicts
        segment: list[list[int]] = [[] for _ in inputs]  # per row: the candidate each belongs to
        offset: list[list[int]] = [[] for _ in inputs]  # per row: its position within it
        for n in group:
            r = row_of[owner[n]]
            fed[r] += cands[n][:-1]
            target[r] += cands[n][1:]
            segment[r] += [n] * rests[n]
            offset[r] += range(rests[n])
        width = max(len(f) for f in fed)
        ids, targets = _right_pad(fed, pad_token_id, device), _right_pad(target, 0, device)
        seg = _right_pad(segment, -1, device)  # (m, T); -1: padding
        sel = torch.tensor(inputs, device=device)
        # a fed token sees the input's positions and the earlier tokens of its own candidate
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        own = (seg.unsqueeze(2) == seg.unsqueeze(1)) & causal & (seg >= 0).unsqueeze(1)
        sees = torch.cat([mask[sel].bool().unsqueeze(1).expand(-1, width, -1), own], dim=2)
        attention = torch.zeros(sees.shape, dtype=logits.dtype, device=device)
        attention.masked_fill_(~sees, neg)  # (m, T, L + T) additive: eager and sdpa alike
        sub = DynamicCache(
            ddp_cache_data=[(k[sel], v[sel]) for k, v in layers], config=model.config
        )  # row r continues input inputs[r]'s cache
        out = model(
            input_ids=ids,
            attention_mask=attention.unsqueeze(1),
            position_ids=base_positions[sel].unsqueeze(1) + _right_pad(offset, 0, device),
            cache=sub,
            use_cache=True,
        )
        fed_logits = out.logits.float()  # (m, T, V): token j predicts target j
        picked = fed_logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        picked = picked - fed_logits.logsumexp(-1)
        valid = seg >= 0
        totals.index_add_(0, seg[valid], picked[valid])
        del sub, out, fed_logits, attention  # free this chunk before the next one
        yield
    scores: list[list[float]] = [[] for _ in input_ids]
    for b, cand, total in zip(owner, cands, totals.tolist(), strict=True):
        scores[b].append(total / len(cand) if length_normalize else total)
    return scores


def _right_pad(rows: list[list[int]], fill: int, device: torch.device) -> torch.Tensor:
    """(len(rows), longest) ids, each row right-padded with ``fill``."""
    width = max(len(r) for r in rows)
    return torch.tensor([r + [fill] * (width - len(r)) for r in rows], device=device)
