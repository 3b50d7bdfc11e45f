"""Per-task key/value caches of soft prompts (and a declared token prefix), reused across batches.

Positions ``0..P-1`` hold the soft prompt in every row and attend only to each other (causal
attention), so their keys/values depend on the task's prompt alone — not on the input, the
padding or the batch. The same holds for a token prefix every row of a task starts with (the
instruction head of ``encode_prompt``) placed right after the prompt. :class:`PromptKVCache`
computes them once per task; a batch starts from the stacked caches.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from clinprompt.prompts.injection import check_prompt_fits

__all__ = ["LayerKV", "PromptKVCache"]

# Per layer: (keys, values), each (1, H_kv, L, head_dim) with L = P + len(prefix).
LayerKV = list[tuple[torch.Tensor, torch.Tensor]]


class PromptKVCache:
    """Per-task key/value caches of the soft prompt (and a declared token prefix), reused.

    Keys are caller-chosen strings; a key must change when its prompt changes (the server uses
    ``"{task}@{digest of the prompt}"``). Thread-safe; least-recently-used entries are evicted
    beyond ``max_entries``.

    Args:
        model: the frozen backbone the caches belong to.
        max_entries: how many caches to keep (each is layers x 2 x H_kv x L x head_dim).
    """

    def __init__(self, model: PreTrainedModel, max_entries: int = 256) -> None:
        self.model = model
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, tuple[int, ...]], LayerKV] = OrderedDict()
        self._prefixes: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        """The task keys with a cache entry (a key appears once per prefix it was used with)."""
        with self._lock:
            return [key for key, _ in self._entries]

    def set_prefix(self, key: str, prefix_ids: Sequence[int]) -> None:
        """Declare that rows of ``key`` start with ``prefix_ids``: cache them with the prompt.

        A row that does not start with them (or has nothing after them) uses the prompt alone.
        """
        with self._lock:
            self._prefixes[key] = tuple(prefix_ids)

    def prefix(self, key: str) -> tuple[int, ...]:
        return self._prefixes.get(key, ())

    def get(self, key: str, prompt: torch.Tensor, prefix_ids: Sequence[int] = ()) -> LayerKV:
        """The cache of ``prompt`` (P, D) ⊕ ``prefix_ids`` under ``key``, computed on first use."""
        entry = (key, tuple(prefix_ids))
        with self._lock:
            if entry in self._entries:
                self._entries.move_to_end(entry)
                return self._entries[entry]
        layers = self._compute(prompt, entry[1])
        with self._lock:
            self._entries[entry] = layers
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return layers

    def invalidate(self, keep: set[str] | None = None) -> None:
        """Drop every entry (or every entry whose key is not in ``keep``) and their prefixes."""
        with self._lock:
            for entry in list(self._entries):
                if keep is None or entry[0] not in keep:
                    del self._entries[entry]
            self._prefixes = {
                k: v for k, v in self._prefixes.items() if keep is not None and k in keep
            }

    @torch.no_grad()
    def _compute(self, prompt: torch.Tensor, prefix_ids: tuple[int, ...]) -> LayerKV:
        if prompt.dim() != 2:
            raise ValueError(f"a task prompt is (P, D); got shape {tuple(prompt.shape)}")
        check_prompt_fits(self.model, prompt.shape[-1])
        embed = self.model.get_input_embeddings()
        dev = embed.weight.device
        tokens = embed(torch.tensor(prefix_ids, dtype=torch.long, device=dev))  # (H, D)
        x = torch.cat([prompt.to(device=dev, dtype=tokens.dtype), tokens]).unsqueeze(
            0
        )  # (1, P + H, D)
        length = x.shape[1]
        cache = DynamicCache(config=self.model.config)
        self.model(
            inputs_embeds=x,
            attention_mask=torch.ones(1, length, dtype=torch.long, device=dev),
            position_ids=torch.arange(length, device=dev).unsqueeze(0),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return [(layer.keys, layer.values) for layer in cache.layers]

    def batch(
        self,
        keys: Sequence[str],
        prompts: torch.Tensor,
        rows: Sequence[Sequence[int]],
        min_tail: int = 1,
    ) -> tuple[DynamicCache, torch.Tensor, list[list[int]]]:
        """The stacked caches of a batch, their mask, and each row with its cached prefix removed.

        Row b's cache covers ``P + H_b`` positions; shorter ones are padded at the end to the
        longest with masked slots. Returns (cache (B, L_max), mask (B, L_max), remaining rows).
        """
        per_row, tails, lengths = [], [], []
        for b, (key, row) in enumerate(zip(keys, rows, strict=True)):
            pre = self.prefix(key)
            if not pre or tuple(row[: len(pre)]) != pre or len(row) - len(pre) < min_tail:
                pre = ()
            layers = self.get(key, prompts[b], pre)
            per_row.append(layers)
            tails.append(list(row[len(pre) :]))
            lengths.append(layers[0][0].shape[-2])
        width = max(lengths)

        def pad(t: torch.Tensor) -> torch.Tensor:  # (1, H_kv, L, hd) → (1, H_kv, L_max, hd)
            return torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[-2]))

        data = [
            (
                torch.cat([pad(row[i][0]) for row in per_row]),
                torch.cat([pad(row[i][1]) for row in per_row]),
            )
            for i in range(len(per_row[0]))
        ]  # per layer: (B, H_kv, L_max, head_dim) each
        mask = torch.tensor(
            [[1] * n + [0] * (width - n) for n in lengths],
            dtype=torch.long,
            device=data[0][0].device,
        )
        return DynamicCache(ddp_cache_data=data, config=self.model.config), mask, tails
