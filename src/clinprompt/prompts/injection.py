"""Inject soft prompts into any Hugging Face causal LM through ``inputs_embeds``.

The prompt (B, P, D) is prepended to the token embeddings (B, T, D); the attention mask is
extended with ones and the labels with -100 (prompt positions never enter the loss). Position
ids are computed from the attention mask, so left- and right-padded batches give the same
logits for their real tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from clinprompt.prompts.soft_prompt import PromptError

__all__ = [
    "IGNORE_INDEX",
    "PromptedInputs",
    "TargetOutputs",
    "check_prompt_fits",
    "inject_prompt",
    "prompted_hidden",
    "prompted_logits",
    "target_outputs",
]

IGNORE_INDEX = -100


@dataclass
class PromptedInputs:
    """Inputs of the backbone with the prompt in place. T' = P + T."""

    inputs_embeds: torch.Tensor  # (B, T', D)
    attention_mask: torch.Tensor  # (B, T')
    position_ids: torch.Tensor  # (B, T')
    labels: torch.Tensor | None  # (B, T') with -100 over the prompt
    num_prompt_tokens: int


def check_prompt_fits(model: PreTrainedModel, prompt_dim: int) -> None:
    """Raise when the prompt's D differs from the backbone's hidden size."""
    hidden = model.get_input_embeddings().weight.shape[1]
    if prompt_dim != hidden:
        raise PromptError(
            f"the prompt has D={prompt_dim} but the backbone's hidden size is {hidden}; "
            "the prompt was trained on another backbone"
        )


def inject_prompt(
    model: PreTrainedModel,
    prompts: torch.Tensor | None,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> PromptedInputs:
    """Prepend ``prompts`` (B, P, D) to the embeddings of ``input_ids`` (B, T)."""
    embed = model.get_input_embeddings()
    tokens = embed(input_ids)  # (B, T, D)
    bsz = input_ids.shape[0]
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if prompts is None:
        prompts = tokens.new_zeros(bsz, 0, tokens.shape[-1])
    if prompts.dim() != 3 or prompts.shape[0] != bsz:
        raise PromptError(f"prompts must be (B={bsz}, P, D); got shape {tuple(prompts.shape)}")
    check_prompt_fits(model, prompts.shape[-1])
    p = prompts.shape[1]
    embeds = torch.cat([prompts.to(tokens.dtype), tokens], dim=1)
    mask = torch.cat([attention_mask.new_ones(bsz, p), attention_mask], dim=1)
    # Positions count only attended tokens: left padding does not shift them.
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    if labels is not None:
        labels = torch.cat([labels.new_full((bsz, p), IGNORE_INDEX), labels], dim=1)
    return PromptedInputs(embeds, mask, position_ids, labels, p)


def prompted_logits(
    model: PreTrainedModel,
    prompts: torch.Tensor | None,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Full logits (B, P + T, V) of the backbone with the prompt prepended."""
    x = inject_prompt(model, prompts, input_ids, attention_mask)
    out = model(
        inputs_embeds=x.inputs_embeds,
        attention_mask=x.attention_mask,
        position_ids=x.position_ids,
        use_cache=False,
    )
    return out.logits


def _decoder(model: PreTrainedModel) -> nn.Module:
    dec = model.get_decoder() if hasattr(model, "get_decoder") else None
    return dec if dec is not None else model.base_model


def prompted_hidden(model: PreTrainedModel, x: PromptedInputs) -> torch.Tensor:
    """Final hidden states (B, T', D) after the last norm, without the LM head."""
    out = _decoder(model)(
        inputs_embeds=x.inputs_embeds,
        attention_mask=x.attention_mask,
        position_ids=x.position_ids,
        use_cache=False,
    )
    return out.last_hidden_state


@dataclass
class TargetOutputs:
    """Outputs at the N positions whose next token is a target token (labels != -100)."""

    loss: torch.Tensor  # mean cross-entropy over the N target tokens
    logits: torch.Tensor  # (N, V)
    hidden: torch.Tensor  # (N, D) final hidden states that produced the logits
    targets: torch.Tensor  # (N,) the target token ids
    example_index: torch.Tensor  # (N,) which example of the batch each position belongs to
    num_tokens: int
    # With hidden_states=True: every layer's hidden states (B, T', D), L + 1 of them (the
    # embeddings first; the last is the final, normed state that produced the logits).
    states: tuple[torch.Tensor, ...] | None = None


def target_outputs(
    model: PreTrainedModel,
    prompts: torch.Tensor | None,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    hidden_states: bool = False,
) -> TargetOutputs:
    """LM loss computed only where it is needed.

    The LM head (V x D, the largest matmul for small backbones) is applied only at the
    positions that predict a target token, instead of at every position of every example.
    With ``hidden_states``, every layer's hidden states come back too (``states``).
    """
    x = inject_prompt(model, prompts, input_ids, attention_mask, labels)
    states = None
    if hidden_states:
        out = _decoder(model)(
            inputs_embeds=x.inputs_embeds,
            attention_mask=x.attention_mask,
            position_ids=x.position_ids,
            use_cache=False,
            output_hidden_states=True,
        )
        hidden = out.last_hidden_state  # (B, T', D)
        states = (*out.hidden_states[:-1], hidden)
    else:
        hidden = prompted_hidden(model, x)  # (B, T', D)
    shifted = x.labels[:, 1:]  # the token each position predicts
    select = shifted != IGNORE_INDEX  # (B, T'-1)
    h = hidden[:, :-1][select]  # (N, D)
    targets = shifted[select]  # (N,)
    logits = model.get_output_embeddings()(h).float()  # (N, V)
    n = int(targets.numel())
    loss = F.cross_entropy(logits, targets) if n else logits.sum() * 0.0
    rows = torch.arange(input_ids.shape[0], device=input_ids.device).unsqueeze(1).expand_as(select)
    return TargetOutputs(loss, logits, h, targets, rows[select], n, states)
