"""Soft prompts: a single (P, D) prompt and the multitask shared ⊙ low-rank prompt.

Shapes: P prompt tokens, D hidden size, K tasks, R rank, B batch.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MultitaskPrompt", "PromptError", "SoftPrompt", "init_prompt_weights"]


class PromptError(ValueError):
    """A prompt whose shape, task ids or initialisation does not fit."""


def init_prompt_weights(
    num_tokens: int,
    embeddings: torch.Tensor,
    method: str = "vocab",
    text_ids: list[int] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Initial (P, D) prompt weights.

    Args:
        num_tokens: P.
        embeddings: the backbone's input-embedding matrix (V, D).
        method: ``random`` (normal with the embeddings' std), ``vocab`` (rows of the embedding
            matrix sampled among the 5,000 most frequent tokens' ids, i.e. the lowest ids in BPE
            vocabularies), or ``text`` (the embeddings of ``text_ids`` repeated to P tokens).
        text_ids: token ids for ``text`` initialisation.
        generator: a seeded generator for reproducibility.
    """
    emb = embeddings.detach().float().cpu()
    vocab, dim = emb.shape
    if method == "random":
        return torch.randn(num_tokens, dim, generator=generator) * emb.std()
    if method == "vocab":
        ids = torch.randint(0, min(vocab, 5000), (num_tokens,), generator=generator)
        return emb[ids].clone()
    if method == "text":
        if not text_ids:
            raise PromptError("text initialisation needs the ids of a non-empty text")
        reps = (num_tokens + len(text_ids) - 1) // len(text_ids)
        ids = torch.tensor((list(text_ids) * reps)[:num_tokens])
        return emb[ids].clone()
    raise PromptError(f"unknown prompt initialisation {method!r}; expected random, vocab or text")


class SoftPrompt(nn.Module):
    """One learned prompt: a (P, D) parameter prepended to the input embeddings."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        if weight.dim() != 2:
            raise PromptError(f"a soft prompt is (P, D); got shape {tuple(weight.shape)}")
        self.weight = nn.Parameter(weight.clone().float())

    @classmethod
    def create(
        cls,
        num_tokens: int,
        embeddings: torch.Tensor,
        method: str = "vocab",
        text_ids: list[int] | None = None,
        seed: int = 0,
    ) -> SoftPrompt:
        """A new prompt initialised by ``method`` (see :func:`init_prompt_weights`)."""
        gen = torch.Generator().manual_seed(seed)
        return cls(init_prompt_weights(num_tokens, embeddings, method, text_ids, gen))

    @property
    def num_tokens(self) -> int:
        return self.weight.shape[0]

    @property
    def dim(self) -> int:
        return self.weight.shape[1]

    def forward(self, batch_size: int, task_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P, D): the same prompt for every example (``task_ids`` is ignored)."""
        return self.weight.unsqueeze(0).expand(batch_size, -1, -1)

    def task_prompt(self, task: int = 0) -> torch.Tensor:
        """(P, D): the effective prompt."""
        return self.weight


class MultitaskPrompt(nn.Module):
    """Shared prompt P* (P, D) and per-task factors U (K, P, R), V (K, R, D).

    Task k's prompt is ``P* ⊙ (U_k @ V_k)``, the decomposition of Multitask Prompt Tuning
    (Wang et al., ICLR 2023). With U = V = 1 and R = 1 every task's prompt equals P*.
    """

    def __init__(self, shared: torch.Tensor, cols: torch.Tensor, rows: torch.Tensor) -> None:
        super().__init__()
        if shared.dim() != 2:
            raise PromptError(f"the shared prompt is (P, D); got shape {tuple(shared.shape)}")
        p, d = shared.shape
        if cols.dim() != 3 or cols.shape[1] != p:
            raise PromptError(f"U must be (K, P={p}, R); got shape {tuple(cols.shape)}")
        k, _, r = cols.shape
        if tuple(rows.shape) != (k, r, d):
            raise PromptError(f"V must be (K={k}, R={r}, D={d}); got shape {tuple(rows.shape)}")
        self.shared = nn.Parameter(shared.clone().float())
        self.cols = nn.Parameter(cols.clone().float())
        self.rows = nn.Parameter(rows.clone().float())

    @classmethod
    def create(
        cls,
        shared: torch.Tensor,
        num_tasks: int,
        rank: int = 1,
        init: str = "ones",
        seed: int = 0,
    ) -> MultitaskPrompt:
        """Factors initialised to ones (every task starts at P*) or ``normal`` (std 0.02, as PEFT)."""
        p, d = shared.shape
        if init == "ones":
            # U V has entries R * 1 * 1; scale so that U @ V == 1 exactly for any R.
            cols = torch.ones(num_tasks, p, rank)
            rows = torch.full((num_tasks, rank, d), 1.0 / rank)
        elif init == "normal":
            gen = torch.Generator().manual_seed(seed)
            cols = torch.randn(num_tasks, p, rank, generator=gen) * 0.02
            rows = torch.randn(num_tasks, rank, d, generator=gen) * 0.02
        else:
            raise PromptError(f"unknown factor initialisation {init!r}; expected ones or normal")
        return cls(shared, cols, rows)

    @property
    def num_tasks(self) -> int:
        return self.cols.shape[0]

    @property
    def num_tokens(self) -> int:
        return self.shared.shape[0]

    @property
    def dim(self) -> int:
        return self.shared.shape[1]

    @property
    def rank(self) -> int:
        return self.cols.shape[2]

    def check_task_ids(self, task_ids: torch.Tensor) -> None:
        """Raise a clear error for task ids outside [0, K)."""
        if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= self.num_tasks):
            bad = sorted({int(t) for t in task_ids.tolist() if t < 0 or t >= self.num_tasks})
            raise PromptError(
                f"task ids {bad} are out of range; this prompt has K={self.num_tasks} tasks (0..{self.num_tasks - 1})"
            )

    def forward(self, batch_size: int, task_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P, D): example b gets task ``task_ids[b]``'s prompt (mixed-task batches)."""
        if task_ids is None:
            if self.num_tasks != 1:
                raise PromptError(
                    f"task_ids are required: this prompt has K={self.num_tasks} tasks"
                )
            task_ids = torch.zeros(batch_size, dtype=torch.long, device=self.shared.device)
        task_ids = task_ids.to(self.shared.device).long().view(-1)
        if task_ids.numel() != batch_size:
            raise PromptError(f"got {task_ids.numel()} task ids for a batch of {batch_size}")
        self.check_task_ids(task_ids)
        scale = torch.bmm(
            self.cols[task_ids], self.rows[task_ids]
        )  # (B, P, R) @ (B, R, D) → (B, P, D)
        return self.shared.unsqueeze(0) * scale

    def task_prompt(self, task: int) -> torch.Tensor:
        """(P, D): task ``task``'s effective prompt."""
        self.check_task_ids(torch.tensor([task]))
        return self.shared * (self.cols[task] @ self.rows[task])

    def trainable(
        self, shared: bool = True, cols: bool = True, rows: bool = True
    ) -> MultitaskPrompt:
        """Choose which of P*, U, V receive gradients."""
        self.shared.requires_grad_(shared)
        self.cols.requires_grad_(cols)
        self.rows.requires_grad_(rows)
        return self
