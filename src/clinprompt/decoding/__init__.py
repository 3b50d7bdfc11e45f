"""Decoding for soft-prompted inputs, shared by evaluation and serving.

Prompt KV caches, the continuous-batching decode loop, greedy generation and option scoring.
This layer imports only ``prompts`` (injection) and below.
"""

from clinprompt.decoding.decode_batch import (
    DEFAULT_MAX_NEW_TOKENS,
    DecodeBatch,
    ReservedLayer,
    encode_options,
    greedy_generate,
    option_logprobs,
    prefill,
    reserved_cache,
)
from clinprompt.decoding.prompt_cache import LayerKV, PromptKVCache

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "DecodeBatch",
    "LayerKV",
    "PromptKVCache",
    "ReservedLayer",
    "encode_options",
    "greedy_generate",
    "option_logprobs",
    "prefill",
    "reserved_cache",
]
