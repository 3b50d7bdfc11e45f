"""Greedy generation of a batch of soft-prompted inputs, stopping per row at EOS or budget."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from clinprompt.decoding.decode_batch import DecodeBatch
from clinprompt.decoding.prefill import check_batch
from clinprompt.decoding.prompt_cache import PromptKVCache

__all__ = ["greedy_generate"]


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
    check_batch(prompts, input_ids, task_keys)
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
