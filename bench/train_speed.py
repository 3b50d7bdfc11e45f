"""Training speed on SmolLM2-135M: clinprompt's steps against PEFT's, measured in one run.

    python bench/train_speed.py [--examples 24] [--batch-size 4] [--prompt-tokens 50] [--threads N]

Every method trains on the same examples (lengths drawn like the ``cpu`` profile's: 24-256 prompt
tokens, 2-40 target tokens) for one epoch with the same batch size, after a one-step warm-up.
The methods' steps are interleaved round-robin, so a change of load on a shared machine hits
them alike. clinprompt's step is the training loop's own (``accumulate_gradients`` →
``clip_gradients`` → AdamW):

* clinprompt PT (length-bucketed batches, LM head only at target positions) against PEFT
  ``PROMPT_TUNING`` (``model(input_ids, labels)``: every position through the LM head, batches in
  data order); clinprompt PT on PEFT's exact batches isolates the LM-head lever from bucketing;
* clinprompt's LoRA baseline (same loop) against plain PEFT LoRA (r=8 on q_proj, v_proj);
* a distillation step (teacher forward + KL + hidden MSE; and with the teacher cache) against
  clinprompt's own PT step on the same batches.

Reports useful tokens/s: real input + target tokens (no padding, no prompt tokens) per second of
training steps; and an fp32 matmul GFLOP/s measured at the start and the end of the same run, so
figures from machines under different load can be compared. Prints the figures, a Markdown
table and the exact command. On a shared, loaded machine pass ``--threads 1``: with two threads
OpenMP's barriers stall every small op for a scheduler slice.
"""

from __future__ import annotations

import argparse
import copy
import random
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from clinprompt.backbone import load_backbone
from clinprompt.data.collate import Encoded, pad_batch
from clinprompt.prompts import IGNORE_INDEX, MultitaskPrompt, SoftPrompt
from clinprompt.train import (
    BatchPlan,
    DistillObjective,
    PromptObjective,
    TeacherCache,
    accumulate_gradients,
    clip_gradients,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=24, help="Examples per method (one epoch) [24]."
    )
    parser.add_argument("--batch-size", type=int, default=4, help="Examples per step [4].")
    parser.add_argument(
        "--prompt-tokens", type=int, default=50, help="Prompt length P [50, the cpu profile's]."
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads [torch's default]."
    )
    parser.add_argument(
        "--backbone",
        default="smollm2-135m",
        help="Backbone [smollm2-135m]; tiny-llama checks the script.",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_examples(n: int, seed: int, tasks: int = 4) -> list[Encoded]:
    """Random token ids with cpu-profile lengths: prompt 24-256 tokens, target 2-40 + EOS."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = [rng.randrange(1000, 20000) for _ in range(rng.randint(24, 256))]
        target = [rng.randrange(1000, 20000) for _ in range(rng.randint(2, 40))] + [0]
        out.append(
            Encoded(prompt + target, [IGNORE_INDEX] * len(prompt) + target, len(prompt), i % tasks)
        )
    return out


def gflops(size: int = 1024, reps: int = 10) -> float:
    """fp32 matmul throughput of this machine right now."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e9


@dataclass
class Method:
    """One way of training, timed step by step."""

    name: str
    step: Callable[[list[int]], None]
    batches: list[list[int]]
    seconds: float = 0.0
    tokens: int = 0


def clinprompt_step(objective, examples: list[Encoded], pad: int) -> Callable[[list[int]], None]:
    """The training loop's step: ``accumulate_gradients`` → ``clip_gradients`` → AdamW."""
    params = objective.named_parameters()
    optimizer = torch.optim.AdamW(list(params.values()), lr=0.3)

    def step(ids: list[int]) -> None:
        accumulate_gradients(objective, examples, ids, pad_id=pad)
        clip_gradients(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def peft_step(model, examples: list[Encoded], pad: int) -> Callable[[list[int]], None]:
    """The usual PEFT step: ``model(input_ids, attention_mask, labels)``: logits at every position."""
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=0.3)

    def step(ids: list[int]) -> None:
        tensors = pad_batch([examples[i] for i in ids], pad_id=pad)
        out = model(
            input_ids=tensors["input_ids"],
            attention_mask=tensors["attention_mask"],
            labels=tensors["labels"],
        )
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run_interleaved(methods: list[Method], examples: list[Encoded]) -> None:
    """One warm-up step each, then round-robin steps, so load drifts hit every method alike."""
    for m in methods:
        m.step(m.batches[0])
    for r in range(len(methods[0].batches)):
        for m in methods[r % len(methods) :] + methods[: r % len(methods)]:
            start = time.perf_counter()
            m.step(m.batches[r])
            m.seconds += time.perf_counter() - start
            m.tokens += sum(len(examples[i]) for i in m.batches[r])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = shlex.join(
        ["python", "bench/train_speed.py", *(sys.argv[1:] if argv is None else argv)]
    )
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

    # ---- setup: one backbone for the prompt methods, a copy each for the two LoRA runs
    flops_start = gflops()
    bb = load_backbone(args.backbone, device="cpu")
    model, pad, p, b = bb.model, bb.tokenizer.pad_token_id, args.prompt_tokens, args.batch_size
    emb = model.get_input_embeddings().weight
    examples = make_examples(args.examples, args.seed)
    lengths = [len(x) for x in examples]
    bucketed = BatchPlan(lengths, b, seed=args.seed, bucket=True, window=64).epoch(0)
    in_order = BatchPlan(lengths, b, seed=args.seed, bucket=False).epoch(0)
    teachers = torch.stack(
        [SoftPrompt.create(p, emb, "vocab", seed=s).weight.detach() for s in range(4)]
    )  # (K, P, D)
    start = time.perf_counter()
    cache = TeacherCache.build(model, teachers, examples, pad_id=pad, top_k=64, batch_size=8)
    cache_s = time.perf_counter() - start
    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]
    )
    ours_lora = get_peft_model(
        copy.deepcopy(model), lora
    ).get_base_model()  # LoRA layers inside; our loop trains them
    plain_lora = get_peft_model(copy.deepcopy(model), lora)
    plain_pt = get_peft_model(
        model, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=p)
    )

    def pt_objective() -> PromptObjective:
        return PromptObjective(model, SoftPrompt.create(p, emb, "vocab"))

    methods = [
        Method("clinprompt PT", clinprompt_step(pt_objective(), examples, pad), bucketed),
        Method(
            "clinprompt PT on PEFT batches",
            clinprompt_step(pt_objective(), examples, pad),
            in_order,
        ),
        Method("PEFT PROMPT_TUNING", peft_step(plain_pt, examples, pad), in_order),
        Method(
            "clinprompt LoRA",
            clinprompt_step(PromptObjective(ours_lora, None, train_model=True), examples, pad),
            bucketed,
        ),
        Method("PEFT LoRA", peft_step(plain_lora, examples, pad), in_order),
        Method(
            "clinprompt distill",
            clinprompt_step(
                DistillObjective(model, MultitaskPrompt.create(teachers.mean(0), 4), teachers),
                examples,
                pad,
            ),
            bucketed,
        ),
        Method(
            "clinprompt distill, cached teacher",
            clinprompt_step(
                DistillObjective(
                    model, MultitaskPrompt.create(teachers.mean(0), 4), teachers, cache=cache
                ),
                examples,
                pad,
            ),
            bucketed,
        ),
    ]

    # ---- measure
    run_interleaved(methods, examples)
    flops_end = gflops()

    # ---- report
    tps = {m.name: m.tokens / m.seconds for m in methods}
    print(
        f"\n{command}\n{bb.name} on CPU, {torch.get_num_threads()} threads; {args.examples} examples "
        f"(mean {sum(lengths) / len(lengths):.0f} real tokens), batch {b}, P={p}, {len(bucketed)} timed steps per method "
        f"(interleaved); fp32 matmul {flops_start:.1f} GFLOP/s at the start, {flops_end:.1f} at the end\n"
    )
    print("| step | useful tokens/s | s per step |\n|---|---:|---:|")
    for m in methods:
        print(f"| {m.name} | {tps[m.name]:.1f} | {m.seconds / len(m.batches):.2f} |")
    pt, peft_pt = tps["clinprompt PT"], tps["PEFT PROMPT_TUNING"]
    print(
        f"\nclinprompt PT / PEFT PROMPT_TUNING: {pt / peft_pt:.2f}x (goal >= 1.3x); on PEFT's batches: {tps['clinprompt PT on PEFT batches'] / peft_pt:.2f}x"
    )
    print(f"clinprompt LoRA / PEFT LoRA: {tps['clinprompt LoRA'] / tps['PEFT LoRA']:.2f}x")
    print(
        f"distill step / PT step: {pt / tps['clinprompt distill']:.2f}x the time (goal <= 1.6x); with the teacher cache "
        f"{pt / tps['clinprompt distill, cached teacher']:.2f}x (+ {cache_s:.1f} s once to build the cache)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
