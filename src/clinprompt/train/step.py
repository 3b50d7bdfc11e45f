"""One optimizer step's work, shared by the loop and the speed benchmark.

Collation, the split of a step's examples across data-parallel processes and into
micro-batches, token-weighted gradient accumulation, the reduction over processes, clipping,
and the dev loss. A micro-batch's loss is a mean over its target tokens; weighting it by its
share of the step's target tokens makes accumulation and data parallelism give the update of one
large batch.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as torch_dist

from clinprompt.data.collate import Encoded, pad_batch
from clinprompt.prompts import IGNORE_INDEX
from clinprompt.train.objectives import Batch, Objective, amp_dtype
from clinprompt.train.workspace import process_state

__all__ = ["accumulate_gradients", "clip_gradients", "collate", "evaluate_loss"]


def collate(examples: list[Encoded], ids: list[int], pad_id: int, device: torch.device) -> Batch:
    """Right-padded tensors for ``examples[ids]`` plus ``example_index`` (B,)."""
    batch = pad_batch([examples[i] for i in ids], pad_id)
    batch["example_index"] = torch.tensor(ids, dtype=torch.long)
    return {k: v.to(device) for k, v in batch.items()}


def _split(xs: list[int], n: int) -> list[list[int]]:
    size, extra = divmod(len(xs), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(xs[start:end])
        start = end
    return out


def _micro_batches(
    ids: list[int], lengths: dict[int, int], world: int, rank: int, accum: int
) -> list[list[int]]:
    # Sorted by length: each micro-batch pads only to its own longest example. Ranks take
    # interleaved examples (balanced lengths), then cut their share into accum micro-batches.
    ordered = sorted(ids, key=lambda i: lengths[i])
    return [m for m in _split(ordered[rank::world], accum) if m]


def _all_reduce(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        torch_dist.all_reduce(t, op=torch_dist.ReduceOp.SUM)
    return t


def _autocast(objective: Objective) -> contextlib.AbstractContextManager:
    dtype = amp_dtype(objective.model)
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()


@torch.no_grad()
def evaluate_loss(
    objective: Objective, examples: list[Encoded], pad_id: int, batch_size: int = 16
) -> float:
    """Target-token cross-entropy over ``examples`` (token-weighted), split across processes."""
    state = process_state()
    device = objective.model.get_input_embeddings().weight.device
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # (loss * tokens, tokens)
    for ids in chunks[state.process_index :: state.num_processes]:
        with _autocast(objective):
            out = objective.loss(collate(examples, ids, pad_id, device), train=False)
        sums += torch.tensor(
            [out.loss.item() * out.num_tokens, out.num_tokens], dtype=torch.float64, device=device
        )
    _all_reduce(sums, state.num_processes)
    return float(sums[0] / sums[1]) if sums[1] > 0 else float("nan")


def accumulate_gradients(
    objective: Objective,
    examples: list[Encoded],
    ids: list[int],
    *,
    pad_id: int,
    grad_accum: int = 1,
) -> torch.Tensor:
    """Forward and backward of one optimizer step's examples ``examples[ids]``.

    The step's examples are split across processes and into ``grad_accum`` micro-batches; each
    micro-batch's loss (a mean over its target tokens) is weighted by its share of the step's
    target tokens, so the gradients equal those of one large batch. Gradients are summed over
    processes.

    Returns:
        (1 + len(objective.part_names),) token-weighted means of the loss and its named parts.
    """
    state = process_state()
    device = objective.model.get_input_embeddings().weight.device
    lengths = {i: len(examples[i]) for i in ids}
    step_tokens = max(sum(sum(1 for t in examples[i].labels if t != IGNORE_INDEX) for i in ids), 1)
    # Every process reduces the same named parts in the same order, even one without examples.
    names = ["loss", *objective.part_names]
    stats = torch.zeros(len(names), device=device)
    for micro in _micro_batches(ids, lengths, state.num_processes, state.process_index, grad_accum):
        with _autocast(objective):
            res = objective.loss(collate(examples, micro, pad_id, device))
        weight = res.num_tokens / step_tokens  # this micro-batch's share of the step's tokens
        (res.loss * weight).backward()
        values = {"loss": res.loss.detach(), **res.parts}
        stats += torch.stack([values[k].float() for k in names]) * weight
    _reduce_grads(objective.named_parameters(), state.num_processes)
    return _all_reduce(stats, state.num_processes)


def _reduce_grads(params: dict[str, torch.nn.Parameter], world: int) -> None:
    """Sum gradients over processes (each process already weighted its share), in one buffer."""
    if world == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params.values()]
    flat = _all_reduce(torch.cat([g.reshape(-1).float() for g in grads]), world)
    start = 0
    for p in params.values():
        n = p.numel()
        p.grad = flat[start : start + n].view_as(p).to(p.dtype)
        start += n


def clip_gradients(params: dict[str, torch.nn.Parameter], max_norm: float) -> float:
    """Clip the gradients' global norm to ``max_norm`` (0: no clipping); return the norm before."""
    grads = [p for p in params.values() if p.grad is not None]
    if not grads:
        return 0.0
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(grads, max_norm))
    return float(
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in grads]))
    )
