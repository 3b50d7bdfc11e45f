"""Decoding for soft-prompted inputs, shared by evaluation and serving.

- :mod:`~clinprompt.decoding.prompt_cache`: per-task KV caches of the soft prompt (and the
  instruction every row of a task starts with), computed once and reused by every batch;
- :mod:`~clinprompt.decoding.prefill`: prompts and unpadded rows → logits and a KV cache, in the
  training layout (left padding, positions from the attention mask);
- :mod:`~clinprompt.decoding.reserved_cache`: a cache layer with free room past its end, so a
  decode step writes its token in place;
- :mod:`~clinprompt.decoding.decode_batch`: continuous batching, rows join and leave at any step;
- :mod:`~clinprompt.decoding.generate`: greedy generation of a whole batch;
- :mod:`~clinprompt.decoding.scoring`: candidate answers ranked by log-likelihood (all at once,
  or one forward pass at a time for a server to interleave).

This layer imports only ``prompts`` (injection) and below.
"""

from clinprompt.decoding.decode_batch import DecodeBatch
from clinprompt.decoding.generate import greedy_generate
from clinprompt.decoding.prefill import prefill, run_passes
from clinprompt.decoding.prompt_cache import LayerKV, PromptKVCache
from clinprompt.decoding.reserved_cache import ReservedLayer, reserved_cache
from clinprompt.decoding.scoring import (
    encode_options,
    option_logprob_passes,
    option_logprobs,
)

__all__ = [
    "DecodeBatch",
    "LayerKV",
    "PromptKVCache",
    "ReservedLayer",
    "encode_options",
    "greedy_generate",
    "option_logprob_passes",
    "option_logprobs",
    "prefill",
    "reserved_cache",
    "run_passes",
]
