"""Parameter accounting: trainable parameters of each method and their share of the backbone.

The one place that counts parameters: a prompt-bank task (a soft prompt, or factors with or
without its own P*) from its shapes alone, a LoRA adapter and the backbone from a model config.
The model is instantiated on the ``meta`` device (no memory, no weights), so the numbers for
LLaMA 3.1 8B can be computed on a laptop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "DEFAULT_PROMPT_TOKENS",
    "ParamRow",
    "backbone_parameter_count",
    "lora_parameter_count",
    "meta_model",
    "parameter_table",
    "prompt_parameter_count",
]

# The paper's prompt length; the CPU profile uses 50 (see configs/).
DEFAULT_PROMPT_TOKENS = 100


@dataclass(frozen=True)
class ParamRow:
    """One method's trainable parameters."""

    method: str
    trainable: int
    percent: float
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def meta_model(config: Any) -> nn.Module:
    """The causal LM of a Hugging Face ``config`` on the ``meta`` device: shapes, no weights."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def prompt_parameter_count(
    kind: str, prompt_tokens: int, dim: int, rank: int = 1, own_shared: bool = False
) -> int:
    """Trainable parameters of one task's prompt, from its shapes.

    Args:
        kind: ``prompt`` (a soft prompt (P, D)) or ``factors`` (u (P, R) and v (R, D) on P*).
        prompt_tokens: P.
        dim: D, the backbone's hidden size.
        rank: R of the factors.
        own_shared: the factors' task also trained (and stores) its own copy of P* (P, D).

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind == "prompt":
        return prompt_tokens * dim
    if kind == "factors":
        return prompt_tokens * rank + rank * dim + (prompt_tokens * dim if own_shared else 0)
    raise ValueError(f"unknown prompt kind {kind!r}; expected prompt or factors")


def backbone_parameter_count(config: Any, model: nn.Module | None = None) -> int:
    """Number of backbone parameters (tied embeddings counted once)."""
    model = model if model is not None else meta_model(config)
    return sum(p.numel() for p in model.parameters())


def lora_parameter_count(
    model: nn.Module, r: int = 8, targets: tuple[str, ...] = ("q_proj", "v_proj")
) -> int:
    """LoRA trainable parameters: r * (in + out) for every targeted linear layer."""
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            total += r * (module.in_features + module.out_features)
    if total == 0:
        raise ValueError(
            f"no linear layers named {list(targets)} in this model; pass the module names LoRA should target"
        )
    return total


def parameter_table(
    config: Any,
    prompt_tokens: int | None = None,
    rank: int = 1,
    num_source_tasks: int = 16,
    lora_r: int = 8,
) -> tuple[list[ParamRow], dict[str, int]]:
    """Rows for prompt tuning, the multitask prompt (source stage, per target) and LoRA.

    Returns:
        (rows, info) where info has ``backbone_parameters``, ``hidden_size`` and ``prompt_tokens``.
    """
    model = meta_model(config)
    total = backbone_parameter_count(config, model)
    d = int(config.hidden_size)
    p = int(prompt_tokens or DEFAULT_PROMPT_TOKENS)
    k = num_source_tasks
    prompt = prompt_parameter_count("prompt", p, d)
    factors = prompt_parameter_count("factors", p, d, rank)

    def row(method: str, n: int, note: str) -> ParamRow:
        return ParamRow(method, n, 100.0 * n / total, note)

    rows = [
        row("prompt tuning (per task)", prompt, f"P x D = {p} x {d}"),
        row(
            "MPT source stage (shared + K factors)",
            prompt + k * factors,
            f"P x D + K (P R + R D), K={k}",
        ),
        row(
            "MPT per target (P* + factors)",
            prompt_parameter_count("factors", p, d, rank, own_shared=True),
            "target adaptation trains P* and u, v",
        ),
        row(
            "MPT per target (factors only)",
            factors,
            "P* frozen: what each extra task adds to a bank",
        ),
        row(
            f"LoRA r={lora_r} (q_proj, v_proj)",
            lora_parameter_count(model, lora_r),
            "PEFT LoRA baseline",
        ),
    ]
    return rows, {"backbone_parameters": total, "hidden_size": d, "prompt_tokens": p}
