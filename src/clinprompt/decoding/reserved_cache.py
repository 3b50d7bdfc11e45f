"""A KV cache layer with room reserved past its end, so a decode step writes in place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

__all__ = ["ReservedLayer", "reserved_cache"]


class ReservedLayer(DynamicLayer):
    """A cache layer with room reserved past its end: a decode step writes in place.

    ``DynamicLayer`` concatenates at every step, copying the whole cache once per token and
    layer (``bench/decode_step.py``: 12% of a batch-32 SmolLM2-135M decode step on CPU; this
    layer makes the step 0.91x as long). This layer keeps its keys and values as the first
    ``length`` slots of a larger buffer and writes new tokens into the free slots; when they
    run out the buffer doubles, so the copies are amortized.
    ``keys``/``values`` stay views of the used slots, as the model expects.

    Args:
        keys, values: (B, H_kv, L, head_dim) the initial contents.
        reserve: free slots to allocate past them.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, reserve: int = 64) -> None:
        super().__init__()
        self.device, self.is_initialized = keys.device, True
        self._place(keys, values, reserve)

    def _place(self, keys: torch.Tensor, values: torch.Tensor, reserve: int) -> None:
        b, h, n, d = keys.shape
        self._kbuf = keys.new_empty(b, h, n + reserve, d)
        self._vbuf = values.new_empty(b, h, n + reserve, d)
        self._kbuf[:, :, :n] = keys
        self._vbuf[:, :, :n] = values
        self._view(0, n)

    def _view(self, start: int, end: int) -> None:
        self._start, self._end = start, end
        self.keys, self.values = self._kbuf[:, :, start:end], self._vbuf[:, :, start:end]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        t = key_states.shape[-2]
        if self._end + t > self._kbuf.shape[-2]:
            self._place(self.keys, self.values, max(t, self._end - self._start, 16))
        self._kbuf[:, :, self._end : self._end + t] = key_states
        self._vbuf[:, :, self._end : self._end + t] = value_states
        self._view(self._start, self._end + t)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._end - self._start

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._kbuf, self._vbuf = self._kbuf[indices], self._vbuf[indices]
        self._view(self._start, self._end)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._kbuf = self._kbuf.repeat_interleave(repeats, dim=0)
        self._vbuf = self._vbuf.repeat_interleave(repeats, dim=0)
        self._view(self._start, self._end)

    def write_rows(self, rows: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Overwrite batch ``rows`` with ``keys``/``values`` (R, H_kv, L, hd), right-aligned to the end."""
        n = keys.shape[-2]
        self._kbuf[rows, :, self._end - n : self._end] = keys
        self._vbuf[rows, :, self._end - n : self._end] = values

    def drop_front(self, n: int) -> None:
        """Forget the first ``n`` used slots (no copy)."""
        self._view(self._start + n, self._end)

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        self._view(self._start, self._end + tokens_to_remove)


def reserved_cache(
    layers: Sequence[tuple[torch.Tensor, torch.Tensor]], config: Any, reserve: int
) -> DynamicCache:
    """A ``DynamicCache`` holding ``layers`` (keys, values) in :class:`ReservedLayer` objects."""
    cache = DynamicCache(config=config)
    cache.layers = [ReservedLayer(k, v, reserve) for k, v in layers]
    return cache
