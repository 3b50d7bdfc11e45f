"""Distillation losses over target positions.

Every loss is a mean over the N positions that predict a target token (the rows of
:class:`clinprompt.prompts.TargetOutputs`), so the training loop can weight micro-batches by
their token counts and gradient accumulation gives the same update as one large batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["hidden_mse", "kl_full", "kl_topk", "layers_mse"]


def kl_full(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(teacher ‖ student) at temperature τ, times τ², averaged over positions.

    Args:
        student_logits: (N, V).
        teacher_logits: (N, V), no gradient needed.
        temperature: τ; the τ² factor keeps the gradient's size independent of τ (Hinton et al.).

    Returns:
        A scalar: ``τ² · mean_n Σ_v p_t(v) (log p_t(v) − log p_s(v))`` with ``p = softmax(z / τ)``.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ"
        )
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)  # (N, V)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)  # (N, V)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (N,)
    return kl.mean() * temperature**2


def kl_topk(
    student_logits: torch.Tensor,
    teacher_values: torch.Tensor,
    teacher_indices: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """KL(teacher ‖ student) over the teacher's top-k tokens (the cached form), times τ².

    The teacher distribution is renormalised over its k kept logits; the student's
    log-probabilities are taken over the full vocabulary at those k tokens. With k = V this
    equals :func:`kl_full`.

    Args:
        student_logits: (N, V).
        teacher_values: (N, k) the teacher's k largest logits.
        teacher_indices: (N, k) their token ids.
        temperature: τ.
    """
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)  # (N, V)
    log_s_k = log_s.gather(-1, teacher_indices.long())  # (N, k)
    log_t = F.log_softmax(teacher_values.float() / temperature, dim=-1)  # (N, k)
    kl = (log_t.exp() * (log_t - log_s_k)).sum(-1)  # (N,)
    return kl.mean() * temperature**2


def hidden_mse(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor) -> torch.Tensor:
    """Mean squared error of final hidden states (N, D), averaged over positions and D."""
    if student_hidden.shape != teacher_hidden.shape:
        raise ValueError(
            f"student hidden {tuple(student_hidden.shape)} and teacher hidden {tuple(teacher_hidden.shape)} differ"
        )
    if student_hidden.shape[0] == 0:
        return student_hidden.sum() * 0.0
    return F.mse_loss(student_hidden.float(), teacher_hidden.float())


def layers_mse(
    student_states: list[torch.Tensor], teacher_states: list[torch.Tensor]
) -> torch.Tensor:
    """The mean over layers of :func:`hidden_mse`: each pair is one layer's (M, D) states.

    A mean, not a sum, so the term's scale does not grow with the number of layers; one layer
    gives exactly its :func:`hidden_mse`.
    """
    if not student_states or len(student_states) != len(teacher_states):
        raise ValueError(
            f"expected one teacher layer per student layer; got {len(student_states)} and {len(teacher_states)}"
        )
    per_layer = [hidden_mse(s, t) for s, t in zip(student_states, teacher_states, strict=True)]
    return per_layer[0] if len(per_layer) == 1 else torch.stack(per_layer).mean()
