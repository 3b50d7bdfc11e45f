"""Target outputs with each distinct soft prompt of a batch run once, not once per row.

A soft prompt sits at positions 0..P-1, before the input, so under causal attention its hidden
states and keys/values depend on the prompt alone: every row of a batch that carries the same
prompt computes the same P positions. :func:`shared_target_outputs` runs each distinct prompt
once (K prompts, (K, P, D)), hands every row its prompt's keys/values (a view for K = 1, a
gather otherwise; the gradient of each row flows back to its prompt) and feeds only the input
tokens. With P = 50, batches of 4 and the ``cpu`` profile's lengths that is about a sixth of the
positions a step computes, in the forward and in the backward pass.

The loss, logits and hidden states are those of
:func:`clinprompt.prompts.target_outputs` on the injected batch (same positions, same mask, the
same target positions), up to floating-point summation order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel

from clinprompt.prompts import IGNORE_INDEX, TargetOutputs
from clinprompt.prompts.injection import check_prompt_fits

__all__ = ["can_share", "shared_target_outputs"]


def can_share(labels: torch.Tensor) -> bool:
    """True unless a row's first token is a target (the last prompt position would predict it)."""
    return labels.shape[1] > 0 and bool((labels[:, 0] == IGNORE_INDEX).all())


def _decoder(model: PreTrainedModel) -> torch.nn.Module:
    dec = model.get_decoder() if hasattr(model, "get_decoder") else None
    return dec if dec is not None else model.base_model


def shared_target_outputs(
    model: PreTrainedModel,
    prompts: torch.Tensor,
    rows: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
) -> TargetOutputs:
    """The LM loss of a right-padded batch whose rows carry one of K prompts.

    Args:
        model: the frozen causal LM.
        prompts: (K, P, D) the distinct prompts (fp32 master weights; cast to the model's dtype).
        rows: (B,) which of the K prompts each row carries.
        input_ids, attention_mask, labels: (B, T) the batch, right-padded, labels -100 outside
            the targets (the first token never a target: see :func:`can_share`).

    Returns:
        The :class:`TargetOutputs` of the injected batch.
    """
    check_prompt_fits(model, prompts.shape[-1])
    decoder = _decoder(model)
    embed = model.get_input_embeddings()
    device = embed.weight.device
    k, p, _ = prompts.shape
    bsz = input_ids.shape[0]
    # 1. each distinct prompt once: its keys/values at positions 0..P-1, (K, H_kv, P, hd) per layer
    prefix = DynamicCache(config=model.config)
    decoder(
        inputs_embeds=prompts.to(device=device, dtype=embed.weight.dtype),
        attention_mask=torch.ones(k, p, dtype=torch.long, device=device),
        position_ids=torch.arange(p, device=device).unsqueeze(0).expand(k, -1),
        cache=prefix,
        use_cache=True,
    )
    rows = rows.to(device)
    per_row = [
        (
            (layer.keys.expand(bsz, -1, -1, -1), layer.values.expand(bsz, -1, -1, -1))
            if k == 1
            else (layer.keys[rows], layer.values[rows])
        )
        for layer in prefix.layers
    ]  # each (B, H_kv, P, hd)
    cache = DynamicCache(ddp_cache_data=per_row, config=model.config)
    # 2. the inputs, after their prompt: positions P.. counted from the mask, as when injected
    mask = torch.cat([attention_mask.new_ones(bsz, p), attention_mask], dim=1)  # (B, P + T)
    position_ids = (p + attention_mask.long().cumsum(-1) - 1).clamp(min=p)  # (B, T)
    hidden = decoder(
        inputs_embeds=embed(input_ids),
        attention_mask=mask,
        position_ids=position_ids,
        cache=cache,
        use_cache=True,
    ).last_hidden_state  # (B, T, D)
    # 3. the LM head only where a target token is predicted (as target_outputs)
    shifted = labels[:, 1:]  # the token each input position predicts
    select = shifted != IGNORE_INDEX  # (B, T - 1)
    h = hidden[:, :-1][select]  # (N, D)
    targets = shifted[select]  # (N,)
    logits = model.get_output_embeddings()(h).float()  # (N, V)
    n = int(targets.numel())
    loss = F.cross_entropy(logits, targets) if n else logits.sum() * 0.0
    index = torch.arange(bsz, device=input_ids.device).unsqueeze(1).expand_as(select)
    return TargetOutputs(loss, logits, h, targets, index[select], n)
