"""Teacher outputs computed once and reused every epoch of distillation.

For every training example the cache keeps, at each position that predicts a target token, the
teacher's top-k logits with their token ids and its final hidden state. Stored as one
safetensors file (flat tensors + per-example offsets) and a JSON header whose key hashes the
teachers' prompts, the examples and k, so a stale cache is rebuilt, never silently reused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel

from clinprompt.artifacts import load_tensors, read_json, save_tensors, write_json
from clinprompt.data.collate import Encoded, pad_batch
from clinprompt.prompts import target_outputs

__all__ = ["TeacherCache", "cache_key"]


def cache_key(teachers: torch.Tensor, examples: list[Encoded], top_k: int) -> str:
    """Hash of the teachers' prompts (K, P, D), the examples' tokens and task ids, and k."""
    h = hashlib.sha256()
    h.update(teachers.detach().float().cpu().contiguous().numpy().tobytes())
    h.update(str(top_k).encode())
    for x in examples:
        h.update(f"{x.task_id}:{x.input_ids}:{x.labels}".encode())
    return h.hexdigest()


@dataclass
class TeacherCache:
    """Flat teacher outputs over all examples' target positions (M positions in total)."""

    values: torch.Tensor  # (M, k) float32: the teacher's k largest logits
    indices: torch.Tensor  # (M, k) int32: their token ids
    hidden: torch.Tensor  # (M, D) float16: final hidden states
    offsets: torch.Tensor  # (E + 1,) int64: example e owns rows offsets[e]:offsets[e + 1]
    key: str

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model: PreTrainedModel,
        teachers: torch.Tensor,
        examples: list[Encoded],
        pad_id: int,
        top_k: int = 64,
        batch_size: int = 16,
    ) -> TeacherCache:
        """Run each example's teacher (``teachers[x.task_id]``) once, in length-sorted batches."""
        device = model.get_input_embeddings().weight.device
        order = sorted(range(len(examples)), key=lambda i: len(examples[i]))
        per_example: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = [None] * len(
            examples
        )
        for start in range(0, len(order), batch_size):
            ids = order[start : start + batch_size]
            batch = {
                k: v.to(device) for k, v in pad_batch([examples[i] for i in ids], pad_id).items()
            }
            prompts = teachers.to(device)[batch["task_ids"]]  # (B, P, D)
            out = target_outputs(
                model, prompts, batch["input_ids"], batch["attention_mask"], batch["labels"]
            )
            k = min(top_k, out.logits.shape[-1])
            values, indices = out.logits.float().topk(k, dim=-1)  # (N, k)
            for row, i in enumerate(ids):
                sel = out.example_index == row
                per_example[i] = (
                    values[sel].cpu(),
                    indices[sel].to(torch.int32).cpu(),
                    out.hidden[sel].to(torch.float16).cpu(),
                )
        sizes = [0 if p is None else p[0].shape[0] for p in per_example]
        offsets = torch.tensor([0, *sizes]).cumsum(0)
        parts = [p for p in per_example if p is not None]
        return cls(
            values=torch.cat([p[0] for p in parts]),
            indices=torch.cat([p[1] for p in parts]),
            hidden=torch.cat([p[2] for p in parts]),
            offsets=offsets,
            key=cache_key(teachers, examples, top_k),
        )

    def lookup(
        self, example_index: torch.Tensor, device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher outputs of a batch's examples, concatenated in batch order.

        The rows line up with :func:`target_outputs`' rows for the same batch: example-major,
        then position order.

        Returns:
            values (N, k) float32, indices (N, k) int64, hidden (N, D) float32.
        """
        rows = torch.cat(
            [
                torch.arange(int(self.offsets[e]), int(self.offsets[e + 1]))
                for e in example_index.tolist()
            ]
        )
        return (
            self.values[rows].to(device),
            self.indices[rows].long().to(device),
            self.hidden[rows].float().to(device),
        )

    def save(self, path: str | Path) -> Path:
        """``path`` (.safetensors) and ``path`` with .json beside it (the key)."""
        path = Path(path)
        save_tensors(
            path,
            {
                "values": self.values,
                "indices": self.indices,
                "hidden": self.hidden,
                "offsets": self.offsets,
            },
        )
        write_json(
            path.with_suffix(".json"),
            {
                "key": self.key,
                "positions": int(self.values.shape[0]),
                "top_k": int(self.values.shape[1]),
            },
        )
        return path

    @classmethod
    def load(cls, path: str | Path, key: str) -> TeacherCache | None:
        """The cache at ``path`` when it exists and was built for ``key``; else None."""
        path = Path(path)
        meta = path.with_suffix(".json")
        if not path.exists() or not meta.exists() or read_json(meta).get("key") != key:
            return None
        t = load_tensors(path)
        return cls(t["values"], t["indices"], t["hidden"], t["offsets"], key)
