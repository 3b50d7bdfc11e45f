"""Option scoring: the log-likelihood of each candidate answer after a soft-prompted input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from clinprompt.decoding.prefill import check_batch, prefill
from clinprompt.decoding.prompt_cache import PromptKVCache

__all__ = ["encode_options", "option_logprobs"]


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
        prompt_cache, task_keys: reuse per-task prompt keys/values (as
            :func:`~clinprompt.decoding.generate.greedy_generate`).
        pad_token_id: fills the padding (never attended).

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
