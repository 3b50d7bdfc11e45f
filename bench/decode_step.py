"""Decode-step micro-benchmark: what the serving engine's KV-cache choices cost on SmolLM2-135M.

    python bench/decode_step.py [--threads 1] [--batch 32] [--steps 32] [--repeats 2]
        [--dtype auto] [--backbone smollm2-135m] [--json FILE]

1. A batch of ``--batch`` rows (the load benchmark's inputs, 4 random vocabulary prompts of
   P = 50, the instruction cached) decodes ``--steps`` tokens, once with clinprompt's
   ``ReservedLayer`` cache (in-place writes) and once with transformers' ``DynamicLayer``
   (concatenation at every token), alternating ``--repeats`` times: ms per decode step.
2. The share of ``aten::cat`` in a ``DynamicLayer`` decode step (torch profiler).
3. Prefill of joining rows: ms per row when rows are prefilled 1, 4, 8 and ``--batch`` at a time.

The backbone computes in ``--dtype`` (default ``auto``). Prints the figures and the command
that produced them; ``--json FILE`` writes them as one object (``bench/figures.py``) whose
``ratios`` name ``vs_dynamic_cache`` (the peer's step time over clinprompt's: above 1, in-place
writes are faster).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import DynamicCache

import clinprompt.decoding.decode_batch as decode_batch
from clinprompt.backbone import load_backbone
from clinprompt.decoding import DecodeBatch, PromptKVCache, prefill

sys.path.insert(0, str(Path(__file__).parent))
from figures import bench_record, ratio, write_record  # noqa: E402
from serve_load import INPUTS  # noqa: E402  (the load benchmark's inputs)


def step_record(
    step_ms: dict[str, list[float]],
    prefill_ms: dict[int, float],
    cat_share: float,
    dtype: dict,
    command: str,
    backbone: str,
    args: argparse.Namespace,
) -> dict:
    """The ``--json`` object: clinprompt's cache as the figures, transformers' as the peer."""
    best = {k: min(v) for k, v in step_ms.items()}
    return bench_record(
        "decode_step",
        command,
        dtype,
        {
            "decode_step_ms_reserved": [round(v, 2) for v in step_ms["reserved"]],
            "prefill_ms_per_row": {str(n): round(ms, 2) for n, ms in prefill_ms.items()},
        },
        {
            "decode_step_ms_dynamic": [round(v, 2) for v in step_ms["dynamic"]],
            "cat_share_of_dynamic_step": round(cat_share, 3),
        },
        {"vs_dynamic_cache": ratio(best["dynamic"], best["reserved"])},
        {"backbone": backbone, "batch": args.batch, "steps": args.steps, "repeats": args.repeats},
    )


def main(argv: list[str] | None = None) -> None:
    from clinprompt.precision import DTYPE_CHOICES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backbone", default="smollm2-135m", help="tiny-llama checks the script")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="backbone dtype [auto]")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python bench/decode_step.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    bb = load_backbone(args.backbone, device=args.device, dtype=args.dtype)
    dtype = bb.dtype_choice.to_dict() if bb.dtype_choice else {}
    tok = bb.tokenizer
    emb = bb.model.get_input_embeddings().weight.detach()
    g = torch.Generator().manual_seed(0)
    prompts = [emb[torch.randint(0, 5000, (50,), generator=g).to(emb.device)] for _ in range(4)]
    head = tok("Extract the problems.\n\n", add_special_tokens=False)["input_ids"]
    rows = [head + tok(t + "\nAnswer:", add_special_tokens=False)["input_ids"] for t in INPUTS]
    cache = PromptKVCache(bb.model)
    for k in range(4):
        cache.set_prefix(f"t{k}", head)

    def batch_of(n: int):
        return (
            torch.stack([prompts[i % 4] for i in range(n)]),
            [rows[i % len(rows)] for i in range(n)],
            [f"t{i % 4}" for i in range(n)],
        )

    reserved = decode_batch.reserved_cache  # what DecodeBatch builds its cache with

    def dynamic(layers, config, reserve):  # the peer: transformers' concatenating layers
        return DynamicCache(ddp_cache_data=list(layers), config=config)

    def running(kind):
        decode_batch.reserved_cache = reserved if kind == "reserved" else dynamic
        p, ids, keys = batch_of(args.batch)
        db = DecodeBatch(bb.model, -1, tok.pad_token_id, cache)  # no EOS: every row runs
        db.add(p, ids, [10**6] * args.batch, list(range(args.batch)), keys)
        return db

    step_ms: dict[str, list[float]] = {"reserved": [], "dynamic": []}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for kind in step_ms:
                db = running(kind)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    db.step()
                step_ms[kind].append((time.perf_counter() - t0) / args.steps * 1000)
        db = running("dynamic")
        for _ in range(4):
            db.step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                db.step()
        decode_batch.reserved_cache = reserved
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        cat = sum(e.self_cpu_time_total for e in events if e.key == "aten::cat")
        prefill_ms = {}
        for n in sorted({1, 4, 8, args.batch}):
            p, ids, keys = batch_of(n)
            reps = max(1, 16 // n)
            t0 = time.perf_counter()
            for _ in range(reps):
                prefill(bb.model, p, ids, tok.pad_token_id, cache, keys, 1)
            prefill_ms[n] = (time.perf_counter() - t0) / reps / n * 1000

    best = {k: min(v) for k, v in step_ms.items()}
    print(f"\ncommand: {command}")
    print(
        f"device: {bb.device} ({torch.get_num_threads()} torch threads, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs), {bb.name} {dtype.get('dtype')} "
        f"({dtype.get('reason')}), P=50, batch {args.batch}, {args.steps} steps x {args.repeats} repeats"
    )
    for kind, values in step_ms.items():
        print(f"decode step, {kind:8s} cache: " + ", ".join(f"{v:.0f}" for v in values) + " ms")
    print(f"  reserved / dynamic (best of each): {best['reserved'] / best['dynamic']:.2f}")
    print(f"aten::cat share of a DynamicLayer decode step (profiler): {cat / total:.0%}")
    print(
        "prefill per joining row: "
        + ", ".join(f"{n} at a time {ms:.0f} ms" for n, ms in prefill_ms.items())
    )
    record = step_record(step_ms, prefill_ms, cat / total, dtype, command, bb.name, args)
    write_record(args.json, record)


if __name__ == "__main__":
    main()
