"""Option scoring: the log-likelihood of each candidate answer after a soft-prompted input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from clinprompt.decoding.prefill import check_batch, prefill
from clinprompt.decoding.prompt_cache import PromptKVCache

__all__ = ["encode_options", "option_chunks", "option_logprobs"]


def encode_options(tokenizer, candidates: Sequence[str]) -> list[list[int]]:
    """Token ids of candidate answers exactly as training saw targets: ``" " + c`` then EOS."""
    return [
        tokenizer(" " + c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for c in candidates
    ]


def option_chunks(
    rests: Sequence[int], row_bytes: int, token_bytes: int, max_bytes: int | None
) -> list[list[int]]:
    """Consecutive candidate rows grouped so that each group's scoring pass fits ``max_bytes``.

    A group of n rows padded to its longest rest r costs ``n * (row_bytes + r * token_bytes)``:
    each row's copy of its input's keys/values (``row_bytes``) and, per fed token, its keys/values
    and logits (``token_bytes``). A row over the budget on its own forms a group alone.

    Args:
        rests: per candidate row, the tokens fed after the input (its length minus one).
        row_bytes: the bytes of one row's copy of the input's keys/values.
        token_bytes: the bytes one fed candidate token adds to a row.
        max_bytes: the budget of one pass; None: one group.
    """
    if max_bytes is None:
        return [list(range(len(rests)))] if rests else []
    groups: list[list[int]] = []
    current: list[int] = []
    widest = 0
    for n, rest in enumerate(rests):
        wider = max(widest, rest)
        if current and (len(current) + 1) * (row_bytes + wider * token_bytes) > max_bytes:
            groups.append(current)
            current, wider = [], rest
        current.append(n)
        widest = wider
    if current:
        groups.append(current)
    return groups


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
    max_chunk_bytes: int | None = None,
) -> list[list[float]]:
    """Log-likelihood of each candidate continuation: the input once, then the candidates.

    Each input is prefilled once (from the prompt cache where given); its key/value cache is then
    repeated once per candidate and the candidates' tokens are fed together, right-padded, in
    one more forward. A multiple-choice question with a long stem thus costs one pass over the
    stem rather than one per option, and the scores equal those of scoring each
    ``prompt ⊕ input ⊕ option`` row on its own.

    With ``max_chunk_bytes``, the candidates are fed in consecutive chunks whose repeated caches
    and logits fit that many bytes (estimated from the cache's and the logits' shapes and dtypes,
    see :func:`option_chunks`), so memory is bounded by the budget, not by the number of
    candidates; the scores are those of one pass (each row is computed on its own either way).

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
    check_batch(prompts, input_ids, task_keys)
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
    first = torch.tensor([c[0] for c in cands], device=device)
    totals = logits[:, -1].float().log_softmax(-1)[index, first]  # (N,) first tokens
    # 2. The rest of every candidate, a chunk of rows at a time, over copies of its input's cache.
    layers = [(layer.keys, layer.values) for layer in cache.layers]  # each (B, H_kv, L, hd)
    kv_token = sum(k[0, :, :1].nbytes + v[0, :, :1].nbytes for k, v in layers)  # one row, one slot
    vocab = logits.shape[-1]
    # per fed token: its keys/values, the logits (model dtype) and two fp32 copies (float, log-softmax)
    token_bytes = kv_token + vocab * (logits.element_size() + 8)
    rests = [len(c) - 1 for c in cands]
    for rows in option_chunks(rests, mask.shape[1] * kv_token, token_bytes, max_chunk_bytes):
        rest = max(rests[n] for n in rows)
        if rest == 0:
            continue
        sel = index[rows]
        sub = DynamicCache(
            ddp_cache_data=[(k[sel], v[sel]) for k, v in layers], config=model.config
        )  # row n continues its input's cache
        padded = torch.tensor(
            [cands[n] + [pad_token_id] * (rest + 1 - len(cands[n])) for n in rows], device=device
        )  # (n, rest + 1)
        lengths = torch.tensor([len(cands[n]) for n in rows], device=device)
        valid = (torch.arange(rest, device=device) < (lengths - 1).unsqueeze(1)).long()  # (n, rest)
        base = mask[sel]
        positions = base.sum(-1, keepdim=True) + torch.arange(rest, device=device)  # after input
        out = model(
            input_ids=padded[:, :-1],
            attention_mask=torch.cat([base, valid], dim=1),
            position_ids=positions,
            cache=sub,
            use_cache=True,
        )
        logprobs = out.logits.float().log_softmax(-1)  # (n, rest, V): token j predicts j+1
        picked = logprobs.gather(-1, padded[:, 1:].unsqueeze(-1)).squeeze(-1)  # (n, rest)
        totals[rows] = totals[rows] + (picked * valid).sum(-1)
        del sub, out, logprobs  # free this chunk before the next one
    scores: list[list[float]] = [[] for _ in input_ids]
    for b, cand, total in zip(owner, cands, totals.tolist(), strict=True):
        scores[b].append(total / len(cand) if length_normalize else total)
    return scores
