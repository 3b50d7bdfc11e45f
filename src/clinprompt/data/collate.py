"""Tokenize text examples and pad them into batches.

The prompt is tokenized in three pieces — head (instruction), input, answer cue — and the
input alone is truncated to ``max_input_tokens``, so a long note never cuts off the
instruction or the cue. The target is tokenized with a leading space and ends with EOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from clinprompt.prompts.injection import IGNORE_INDEX
from clinprompt.tasks.base import ANSWER_CUE, Example

__all__ = ["Encoded", "encode_example", "encode_prompt", "pad_batch"]


@dataclass
class Encoded:
    """Token ids of one example: ``input_ids`` = prompt ids + target ids; ``labels`` mask the prompt."""

    input_ids: list[int]
    labels: list[int]
    prompt_length: int
    task_id: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_prompt(
    tokenizer: Any, example: Example, max_input_tokens: int | None = None
) -> list[int]:
    """Token ids of the prompt (instruction, input truncated to ``max_input_tokens``, cue)."""
    body = _ids(tokenizer, example.input)
    if max_input_tokens is not None and len(body) > max_input_tokens:
        # the part the task type keeps (Example.keep): the start, or the end
        body = body[-max_input_tokens:] if example.keep == "end" else body[:max_input_tokens]
    return _ids(tokenizer, example.prompt_head) + body + _ids(tokenizer, ANSWER_CUE)


def encode_example(
    tokenizer: Any,
    example: Example,
    max_input_tokens: int | None = None,
    max_target_tokens: int | None = None,
    task_id: int = 0,
) -> Encoded:
    """Prompt + target ids with labels = -100 over the prompt (loss on target tokens only)."""
    prompt = encode_prompt(tokenizer, example, max_input_tokens)
    target = _ids(tokenizer, " " + example.target)
    if max_target_tokens is not None:
        target = target[:max_target_tokens]
    target = target + [tokenizer.eos_token_id]
    return Encoded(prompt + target, [IGNORE_INDEX] * len(prompt) + target, len(prompt), task_id)


def pad_batch(items: list[Encoded], pad_id: int, side: str = "right") -> dict[str, torch.Tensor]:
    """Pad to the longest example: ``input_ids``, ``attention_mask``, ``labels``, ``task_ids``."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', got {side!r}")
    width = max(len(x) for x in items)
    ids, mask, labels = [], [], []
    for x in items:
        pad = width - len(x)
        if side == "right":
            ids.append(x.input_ids + [pad_id] * pad)
            mask.append([1] * len(x) + [0] * pad)
            labels.append(x.labels + [IGNORE_INDEX] * pad)
        else:
            ids.append([pad_id] * pad + x.input_ids)
            mask.append([0] * pad + [1] * len(x))
            labels.append([IGNORE_INDEX] * pad + x.labels)
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "task_ids": torch.tensor([x.task_id for x in items], dtype=torch.long),
    }
