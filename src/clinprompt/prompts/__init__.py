"""Soft prompts, the multitask decomposition, and their injection into a causal LM."""

from clinprompt.prompts.injection import (
    IGNORE_INDEX,
    PromptedInputs,
    TargetOutputs,
    check_prompt_fits,
    inject_prompt,
    prompted_hidden,
    prompted_logits,
    target_outputs,
)
from clinprompt.prompts.soft_prompt import (
    MultitaskPrompt,
    PromptError,
    SoftPrompt,
    init_prompt_weights,
)

__all__ = [
    "IGNORE_INDEX",
    "MultitaskPrompt",
    "PromptError",
    "PromptedInputs",
    "SoftPrompt",
    "TargetOutputs",
    "check_prompt_fits",
    "init_prompt_weights",
    "inject_prompt",
    "prompted_hidden",
    "prompted_logits",
    "target_outputs",
]
