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

from clinprompt.prompts import IGNORE_INDEX, SoftPrompt, TargetOutputs, target_outputs
from clinprompt.train.losses import kl_full, kl_topk, layers_mse
from clinprompt.train.shared_prompt import can_share, shared_target_outputs
from clinprompt.train.teacher_cache import TeacherCache

__all__ = [
    "FACTOR_PARAMS",
    "HIDDEN_POSITIONS",
    "SHARED_PARAMS",
    "DistillObjective",
    "LossOutput",
    "Objective",
    "PromptObjective",
    "amp_dtype",
]

# Names (from named_parameters) of a MultitaskPrompt's P* and its factors u, v, for
# learning-rate groups.
SHARED_PARAMS = ("prompt.shared",)
FACTOR_PARAMS = ("prompt.cols", "prompt.rows")
HIDDEN_POSITIONS = ("target", "input", "all")

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
    """bf16/fp16 autocast for a half-precision backbone on CUDA, else None.

    On a CPU a bf16 backbone needs no autocast: its weights are bf16 already, the fp32 prompt is
    cast to them at injection (its gradient flows back through the cast, so the parameter, its
    gradient and AdamW's states stay fp32) and the logits are upcast before the loss.
    """
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
        share_prompt: run each distinct prompt of a batch once and give every row its keys and
            values (:mod:`clinprompt.train.shared_prompt`) instead of once per row; the same
            loss and gradients up to summation order, fewer positions computed.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        prompt: nn.Module | None,
        train_model: bool = False,
        share_prompt: bool = True,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.train_model = train_model
        self.share_prompt = share_prompt
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

    def distinct_prompts(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, P, D) the batch's distinct prompts and (B,) which one each row carries."""
        assert self.prompt is not None
        task_ids = batch["task_ids"]
        if isinstance(self.prompt, SoftPrompt):  # one prompt whatever the task ids say
            return self.prompt(1, None), torch.zeros_like(task_ids)
        tasks, rows = task_ids.unique(return_inverse=True)
        return self.prompt(len(tasks), tasks), rows

    def loss(self, batch: Batch, train: bool = True) -> LossOutput:
        if self.share_prompt and self.prompt is not None and can_share(batch["labels"]):
            prompts, rows = self.distinct_prompts(batch)
            out = shared_target_outputs(
                self.model,
                prompts,
                rows,
                batch["input_ids"],
                batch["attention_mask"],
                batch["labels"],
            )
        else:
            out = target_outputs(
                self.model,
                self.prompts(batch),
                batch["input_ids"],
                batch["attention_mask"],
                batch["labels"],
            )
        return LossOutput(out.loss, out.num_tokens, {"lm": out.loss.detach()})


class DistillObjective(PromptObjective):
    """λ_lm · LM + λ_logits · KL(teacher ‖ student, τ) + λ_hidden · MSE(hidden states).

    The hidden term compares the student's and the teacher's hidden states (``output_hidden_states``)
    at ``hidden_layers`` × ``hidden_positions``: per layer the MSE over the selected positions and
    D, then the mean over layers (:func:`clinprompt.train.losses.layers_mse`). The default, the
    final layer at the target positions, is the state the logits are computed from.

    Args:
        model: the frozen backbone.
        student: the :class:`MultitaskPrompt` being trained (task ids index its tasks).
        teachers: (K, P, D) the teachers' prompts, task k ↔ student task k.
        terms: which terms are on (``lm``, ``logits``, ``hidden``): the ablation switches.
        logits_weight, hidden_weight: λ_logits, λ_hidden.
        temperature: τ of the KL term.
        cache: precomputed teacher outputs (top-k logits + final hidden states at target
            positions), indexed by the batch's ``example_index``; without it the teacher runs a
            forward pass per batch. Only with the default hidden layers and positions.
        lm_weight: λ_lm.
        hidden_layers: indices into the L + 1 hidden states (0: embeddings, -1: final).
        hidden_positions: ``target`` (positions predicting an answer token), ``input`` (every
            non-prompt, non-pad position) or ``all`` (``input`` plus the prompt's positions).

    Raises:
        ValueError: a layer index outside the backbone, an unknown position set, or a cache
            with other hidden layers or positions than the default.
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
        *,
        lm_weight: float = 1.0,
        hidden_layers: tuple[int, ...] | list[int] = (-1,),
        hidden_positions: str = "target",
    ) -> None:
        super().__init__(model, student)
        self.teachers = teachers.detach()  # (K, P, D)
        self.terms = set(terms)
        self.lm_weight = lm_weight
        self.logits_weight = logits_weight
        self.hidden_weight = hidden_weight
        self.temperature = temperature
        self.cache = cache
        self.hidden_layers = _layer_indices(hidden_layers, model.config.num_hidden_layers + 1)
        if hidden_positions not in HIDDEN_POSITIONS:
            raise ValueError(
                f"distill.hidden_positions: {hidden_positions!r}; expected one of {', '.join(HIDDEN_POSITIONS)}"
            )
        self.hidden_positions = hidden_positions
        final = (model.config.num_hidden_layers,)
        if (
            cache is not None
            and "hidden" in self.terms
            and (self.hidden_layers != final or hidden_positions != "target")
        ):
            raise ValueError(
                "the teacher cache keeps only the final layer's hidden states at target positions; "
                f"hidden_layers={list(hidden_layers)}, hidden_positions={hidden_positions!r} need "
                "distill.teacher_cache=false"
            )
        self.part_names = (
            "lm",
            *(["kl"] if "logits" in self.terms else []),
            *(["mse"] if "hidden" in self.terms else []),
        )

    def loss(self, batch: Batch, train: bool = True) -> LossOutput:
        hidden = train and "hidden" in self.terms
        prompts = self.prompts(batch)
        student = target_outputs(
            self.model,
            prompts,
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
            hidden_states=hidden,
        )
        parts = {"lm": student.loss.detach()}
        if not train:
            return LossOutput(student.loss, student.num_tokens, parts)
        total = student.loss * self.lm_weight if "lm" in self.terms else student.loss * 0.0
        if self.terms & {"logits", "hidden"}:
            if self.cache is not None:
                t_values, t_indices, t_hidden = self.cache.lookup(
                    batch["example_index"], student.logits.device
                )
                t_logits, t_states = None, [t_hidden]
            else:
                teacher = self._teacher_forward(batch, hidden)
                t_logits = teacher.logits
                t_states = self._selected(teacher, batch) if hidden else []
            if "logits" in self.terms:
                if t_logits is None:
                    kl = kl_topk(student.logits, t_values, t_indices, self.temperature)
                else:
                    kl = kl_full(student.logits, t_logits, self.temperature)
                total = total + self.logits_weight * kl
                parts["kl"] = kl.detach()
            if "hidden" in self.terms:
                mse = layers_mse(self._selected(student, batch), t_states)
                total = total + self.hidden_weight * mse
                parts["mse"] = mse.detach()
        return LossOutput(total, student.num_tokens, parts)

    def _selected(self, out: TargetOutputs, batch: Batch) -> list[torch.Tensor]:
        """(M, D) hidden states of each of ``hidden_layers`` at ``hidden_positions``.

        Rows are example-major, then position order: at the target positions of the final layer
        they are exactly ``out.hidden`` (the rows of :func:`target_outputs`).
        """
        assert out.states is not None
        mask = batch["attention_mask"].bool()  # (B, T)
        num_prompt = out.states[0].shape[1] - mask.shape[1]
        ones = mask.new_ones(mask.shape[0], num_prompt)
        if self.hidden_positions == "target":
            labels = batch["labels"]
            predicts = torch.cat([labels.new_full(ones.shape, IGNORE_INDEX), labels], 1)[:, 1:]
            keep = torch.cat([predicts != IGNORE_INDEX, mask.new_zeros(mask.shape[0], 1)], 1)
        elif self.hidden_positions == "input":
            keep = torch.cat([~ones, mask], 1)
        else:
            keep = torch.cat([ones, mask], 1)
        return [out.states[i][keep] for i in self.hidden_layers]  # each (M, D)

    @torch.no_grad()
    def _teacher_forward(self, batch: Batch, hidden_states: bool) -> TargetOutputs:
        """The teachers' outputs: logits (N, V) at the target positions, and (with
        ``hidden_states``) every layer's hidden states."""
        task_ids = batch["task_ids"].to(self.teachers.device)
        prompts = self.teachers[task_ids]  # (B, P, D)
        return target_outputs(
            self.model,
            prompts,
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
            hidden_states=hidden_states,
        )


def _layer_indices(layers: tuple[int, ...] | list[int], num_states: int) -> tuple[int, ...]:
    """``layers`` as indices in [0, num_states), in the order given, each once.

    Raises:
        ValueError: an index outside ``[-num_states, num_states)`` or no index at all.
    """
    out: list[int] = []
    for i in layers:
        if not -num_states <= int(i) < num_states:
            raise ValueError(
                f"distill.hidden_layers: {i} is outside the backbone's {num_states} hidden states "
                f"(0: the embeddings ... {num_states - 1} or -1: the final layer)"
            )
        if int(i) % num_states not in out:
            out.append(int(i) % num_states)
    if not out:
        raise ValueError("distill.hidden_layers: name at least one layer, e.g. [-1]")
    return tuple(out)
