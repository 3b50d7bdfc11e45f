"""What the loop minimises: a loss over one padded micro-batch and the parameters it trains.

Every objective goes through :func:`clinprompt.prompts.target_outputs`, so the LM head is applied
only at the positions that predict a target token. Losses are means over those N positions; the
loop weights micro-batches by N.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn
from transformers import PreTrainedModel

from clinprompt.prompts import target_outputs
from clinprompt.train.losses import hidden_mse, kl_full, kl_topk
from clinprompt.train.teacher_cache import TeacherCache

__all__ = ["DistillObjective", "LossOutput", "Objective", "PromptObjective", "amp_dtype"]

Batch = dict[
    str, torch.Tensor
]  # input_ids, attention_mask, labels (B, T); task_ids, example_index (B,)


@dataclass
class LossOutput:
    """The loss of one micro-batch (mean over its target tokens) and its named parts."""

    loss: torch.Tensor
    num_tokens: int
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective(Protocol):
    """The interface the training loop needs."""

    model: PreTrainedModel
    part_names: tuple[str, ...]  # the named parts every training loss reports

    def named_parameters(self) -> dict[str, nn.Parameter]:
        """The trainable parameters (fp32), by stable name (checkpoints use the names)."""
        ...

    def loss(self, batch: Batch, train: bool = True) -> LossOutput:
        """Loss of a micro-batch; with ``train=False`` the dev loss (target cross-entropy)."""
        ...


def amp_dtype(model: PreTrainedModel) -> torch.dtype | None:
    """bf16/fp16 autocast for a half-precision backbone on CUDA, else None (plain fp32)."""
    weight = model.get_input_embeddings().weight
    if weight.device.type == "cuda" and weight.dtype in (torch.bfloat16, torch.float16):
        return weight.dtype
    return None


def _trainable(module: nn.Module, prefix: str) -> dict[str, nn.Parameter]:
    return {f"{prefix}{n}": p for n, p in module.named_parameters() if p.requires_grad}


class PromptObjective:
    """Target-token cross-entropy of the backbone with a soft prompt (or none, e.g. LoRA).

    Args:
        model: the frozen backbone (with LoRA layers injected for the LoRA baseline).
        prompt: a :class:`SoftPrompt` or :class:`MultitaskPrompt` (``None``: no prompt).
        train_model: also train the model's parameters that require grad (LoRA).
    """

    def __init__(
        self, model: PreTrainedModel, prompt: nn.Module | None, train_model: bool = False
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.train_model = train_model
        self.part_names: tuple[str, ...] = ("lm",)

    def named_parameters(self) -> dict[str, nn.Parameter]:
        params = _trainable(self.prompt, "prompt.") if self.prompt is not None else {}
        if self.train_model:
            params.update(_trainable(self.model, "model."))
        return params

    def prompts(self, batch: Batch) -> torch.Tensor | None:
        """(B, P, D) prompts for the batch, or None."""
        if self.prompt is None:
            return None
        return self.prompt(batch["input_ids"].shape[0], batch["task_ids"])

    def loss(self, batch: Batch, train: bool = True) -> LossOutput:
        out = target_outputs(
            self.model,
            self.prompts(batch),
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
        )
        return LossOutput(out.loss, out.num_tokens, {"lm": out.loss.detach()})


class DistillObjective(PromptObjective):
    """LM loss + λ_logits · KL(teacher ‖ student, τ) + λ_hidden · MSE(final hidden states).

    Args:
        model: the frozen backbone.
        student: the :class:`MultitaskPrompt` being trained (task ids index its tasks).
        teachers: (K, P, D) the teachers' prompts, task k ↔ student task k.
        terms: which terms are on (``lm``, ``logits``, ``hidden``): the ablation switches.
        logits_weight, hidden_weight: λ_logits, λ_hidden.
        temperature: τ of the KL term.
        cache: precomputed teacher outputs (top-k logits + hidden states), indexed by the
            batch's ``example_index``; without it the teacher runs a forward pass per batch.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        student: nn.Module,
        teachers: torch.Tensor,
        terms: tuple[str, ...] | list[str] = ("lm", "logits", "hidden"),
        logits_weight: float = 1.0,
        hidden_weight: float = 1.0,
        temperature: float = 2.0,
        cache: TeacherCache | None = None,
    ) -> None:
        super().__init__(model, student)
        self.teachers = teachers.detach()  # (K, P, D)
        self.terms = set(terms)
        self.logits_weight = logits_weight
        self.hidden_weight = hidden_weight
        self.temperature = temperature
        self.cache = cache
        self.part_names = (
            "lm",
            *(["kl"] if "logits" in self.terms else []),
            *(["mse"] if "hidden" in self.terms else []),
        )

    def loss(self, batch: Batch, train: bool = True) -> LossOutput:
        student = target_outputs(
            self.model,
            self.prompts(batch),
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
        )
        parts = {"lm": student.loss.detach()}
        if not train:
            return LossOutput(student.loss, student.num_tokens, parts)
        total = student.loss if "lm" in self.terms else student.loss * 0.0
        if self.terms & {"logits", "hidden"}:
            if self.cache is not None:
                t_values, t_indices, t_hidden = self.cache.lookup(
                    batch["example_index"], student.logits.device
                )
                t_logits = None
            else:
                t_logits, t_hidden = self._teacher_forward(batch)
            if "logits" in self.terms:
                if t_logits is None:
                    kl = kl_topk(student.logits, t_values, t_indices, self.temperature)
                else:
                    kl = kl_full(student.logits, t_logits, self.temperature)
                total = total + self.logits_weight * kl
                parts["kl"] = kl.detach()
            if "hidden" in self.terms:
                mse = hidden_mse(student.hidden, t_hidden)
                total = total + self.hidden_weight * mse
                parts["mse"] = mse.detach()
        return LossOutput(total, student.num_tokens, parts)

    @torch.no_grad()
    def _teacher_forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher logits (N, V) and hidden states (N, D) at the student's target positions."""
        task_ids = batch["task_ids"].to(self.teachers.device)
        prompts = self.teachers[task_ids]  # (B, P, D)
        out = target_outputs(
            self.model, prompts, batch["input_ids"], batch["attention_mask"], batch["labels"]
        )
        return out.logits, out.hidden
