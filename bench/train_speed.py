"""Training speed on SmolLM2-135M: clinprompt's steps against PEFT's, measured in one run.

    python bench/train_speed.py [--examples 24] [--batch-size 4] [--prompt-tokens 50] [--threads N]
        [--dtype auto] [--methods pt,lora,distill] [--json FILE] [--profile]

Every method trains on the same examples (lengths drawn like the ``cpu`` profile's: 24-256 prompt
tokens, 2-40 target tokens) for one epoch with the same batch size, after a one-step warm-up.
The methods' steps are interleaved round-robin, so a change of load on a shared machine hits
them alike. clinprompt's step is the training loop's own (``accumulate_gradients`` →
``clip_gradients`` → AdamW). The backbone computes in ``--dtype`` (default ``auto``: bf16 where
this machine's matrix units make it faster, see ``clinprompt.precision``), and clinprompt's PT
step is also timed on an fp32 copy in the same run; every peer runs at ``--dtype`` too.

The headline comparison is fair: PEFT ``PROMPT_TUNING`` (``model(input_ids, labels)``: every
position through the LM head) gets **the same length-bucketed batches** as clinprompt, so the
ratio measures the step, not the batching. Second lines, labelled as such: PEFT on its own
batches (data order, no bucketing: what a plain PEFT loop does) and clinprompt on those same
unbucketed batches (the LM-head lever alone). Then clinprompt's LoRA baseline against plain PEFT
LoRA (r=8 on q_proj, v_proj, same batches), clinprompt PT with its prompt run once per row
instead of once per batch (the prompt-sharing lever, ``PromptObjective(share_prompt=False)``),
and a distillation step (teacher forward + KL +
hidden MSE; and with the teacher cache) against clinprompt's own PT step.

Reports useful tokens/s: real input + target tokens (no padding, no prompt tokens) per second of
training steps; and an fp32 matmul GFLOP/s measured at the start and the end of the same run, so
figures from machines under different load can be compared. Prints the figures, a Markdown
table and the exact command; ``--json FILE`` writes them as one object (``bench/figures.py``)
whose ``ratios`` name ``auto_vs_fp32`` and ``vs_peft_same_batches``. ``--profile`` adds a torch
profile of one PT step and one dev-loss pass: the share of matrix products, attention and the
rest. On a shared, loaded machine pass ``--threads 1``: with two threads OpenMP's barriers
stall every small op for a scheduler slice.
"""

from __future__ import annotations

import argparse
import collections
import copy
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clinprompt.backbone import Backbone, load_backbone
from clinprompt.data.collate import Encoded, pad_batch
from clinprompt.precision import DTYPE_CHOICES, dtype_name
from clinprompt.prompts import IGNORE_INDEX, MultitaskPrompt, SoftPrompt
from clinprompt.train import (
    BatchPlan,
    DistillObjective,
    PromptObjective,
    TeacherCache,
    accumulate_gradients,
    clip_gradients,
)
from clinprompt.train.step import evaluate_loss

sys.path.insert(0, str(Path(__file__).parent))
from figures import bench_record, command_of, ratio, write_record  # noqa: E402

METHOD_GROUPS = ("pt", "lora", "distill")


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
    parser.add_argument("--device", default="cpu", help="cpu | cuda [cpu].")
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPE_CHOICES,
        help="Backbone dtype of clinprompt and the peers [auto]; PT is also timed in fp32.",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHOD_GROUPS),
        help="Comma-separated groups: pt (PT, fp32 PT, PEFT PT), lora, distill [all].",
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="Also write the figures.")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Profile one PT step and one dev-loss pass (op shares) after the timing.",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = set(args.methods) - set(METHOD_GROUPS)
    if unknown or "pt" not in args.methods:
        parser.error(f"--methods: groups among {', '.join(METHOD_GROUPS)}, pt included")
    return args


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

    key: str  # the name in the JSON figures
    name: str  # the row label
    step: Callable[[list[int]], None]
    batches: list[list[int]]
    dtype: str
    side: str = "figures"  # figures (clinprompt) | peer (PEFT)
    seconds: float = 0.0
    tokens: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.name,
            "useful_tokens_per_s": round(self.tokens_per_s, 2),
            "s_per_step": round(self.seconds / len(self.batches), 4),
            "steps": len(self.batches),
            "useful_tokens": self.tokens,
            "dtype": self.dtype,
        }


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
    device = next(model.parameters()).device

    def step(ids: list[int]) -> None:
        tensors = pad_batch([examples[i] for i in ids], pad_id=pad)
        out = model(
            input_ids=tensors["input_ids"].to(device),
            attention_mask=tensors["attention_mask"].to(device),
            labels=tensors["labels"].to(device),
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
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for r in range(len(methods[0].batches)):
        for m in methods[r % len(methods) :] + methods[: r % len(methods)]:
            sync()
            start = time.perf_counter()
            m.step(m.batches[r])
            sync()
            m.seconds += time.perf_counter() - start
            m.tokens += sum(len(examples[i]) for i in m.batches[r])


# ------------------------------------------------------------------------------- profile
# Op name fragments → category; the first matching category wins, the rest is "other".
OP_CATEGORIES = (
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("attention", ("scaled_dot_product", "flash_attention", "efficient_attention")),
    ("loss (log-softmax, cross-entropy)", ("log_softmax", "cross_entropy", "nll_loss")),
    (
        "copies, casts, padding, indexing",
        (
            "aten::copy_",
            "aten::_to_copy",
            "aten::cat",
            "aten::clone",
            "aten::index",
            "aten::embedding",
            "aten::fill_",
            "aten::zero_",
            "aten::where",
            "aten::stack",
            "aten::masked",
            "aten::nonzero",
            "aten::contiguous",
        ),
    ),
    ("optimizer, clipping", ("_foreach", "adamw", "aten::lerp", "aten::addcdiv", "vector_norm")),
)


def op_shares(run: Callable[[], None]) -> dict[str, Any]:
    """Profile ``run()``: wall time, time outside ops (Python, dispatch) and each category's share."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
    by: collections.Counter[str] = collections.Counter()
    total = 0.0
    for event in prof.key_averages():
        t = event.self_cpu_time_total / 1e6
        total += t
        cat = next(
            (c for c, keys in OP_CATEGORIES if any(k in event.key for k in keys)),
            "elementwise, norms, other ops",
        )
        by[cat] += t
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:8]
    return {
        "wall_s": round(wall, 3),
        "op_s": round(total, 3),
        "outside_ops_share": round(max(wall - total, 0.0) / wall, 3),
        "shares": {k: round(v / total, 3) for k, v in by.most_common()},
        "top_ops": {e.key: round(e.self_cpu_time_total / 1e6 / total, 3) for e in top},
    }


def padding_share(examples: list[Encoded], batches: list[list[int]]) -> float:
    """Share of the computed token positions (prompt excluded) that are padding."""
    real = sum(len(examples[i]) for b in batches for i in b)
    padded = sum(max(len(examples[i]) for i in b) * len(b) for b in batches)
    return round(1 - real / padded, 3)


# ----------------------------------------------------------------------------------- run
def load_pair(args: argparse.Namespace) -> tuple[Backbone, Backbone]:
    """(the backbone at ``--dtype``, an fp32 one: the same object when ``--dtype`` gave fp32)."""
    bb = load_backbone(args.backbone, device=args.device, dtype=args.dtype)
    if bb.dtype == torch.float32:
        return bb, bb
    return bb, load_backbone(args.backbone, device=args.device, dtype="fp32")


def build_methods(
    args: argparse.Namespace, bb: Backbone, fp32: Backbone, examples: list[Encoded]
) -> tuple[list[Method], dict[str, Any]]:
    """The timed methods, and what was built on the way (batches, cache time)."""
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

    model, pad, p, b = bb.model, bb.tokenizer.pad_token_id, args.prompt_tokens, args.batch_size
    dtype = dtype_name(bb.dtype)
    emb = fp32.model.get_input_embeddings().weight
    lengths = [len(x) for x in examples]
    bucketed = BatchPlan(lengths, b, seed=args.seed, bucket=True, window=64).epoch(0)
    in_order = BatchPlan(lengths, b, seed=args.seed, bucket=False).epoch(0)
    info: dict[str, Any] = {
        "padding_share_bucketed": padding_share(examples, bucketed),
        "padding_share_data_order": padding_share(examples, in_order),
    }

    def pt(backbone: Backbone) -> PromptObjective:
        prompt = SoftPrompt.create(p, emb, "vocab").to(backbone.device)  # fp32 master weights
        return PromptObjective(backbone.model, prompt)

    # PEFT prompt tuning leaves the base model's modules as they are: it may share the model
    plain_pt = get_peft_model(
        model, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=p)
    )
    methods = [
        Method("pt", f"clinprompt PT, --dtype {args.dtype} ({dtype})", None, bucketed, dtype),
        Method("pt_fp32", "clinprompt PT, fp32", None, bucketed, "fp32"),
        Method(
            "peft_pt_same_batches",
            f"PEFT PROMPT_TUNING ({dtype}), the same bucketed batches",
            peft_step(plain_pt, examples, pad),
            bucketed,
            dtype,
            side="peer",
        ),
        Method(
            "peft_pt_own_batches",
            f"second line: PEFT PROMPT_TUNING ({dtype}), its own batches (data order, no bucketing)",
            peft_step(plain_pt, examples, pad),
            in_order,
            dtype,
            side="peer",
        ),
        Method(
            "pt_unbucketed",
            f"second line: clinprompt PT ({dtype}) on PEFT's unbucketed batches",
            None,
            in_order,
            dtype,
        ),
        Method(
            "pt_prompt_per_row",
            f"second line: clinprompt PT ({dtype}), the prompt run once per row (no sharing)",
            None,
            bucketed,
            dtype,
        ),
    ]
    methods[0].step = clinprompt_step(pt(bb), examples, pad)
    methods[1].step = clinprompt_step(pt(fp32), examples, pad)
    methods[4].step = clinprompt_step(pt(bb), examples, pad)
    per_row = pt(bb)
    per_row.share_prompt = False
    methods[5].step = clinprompt_step(per_row, examples, pad)
    if "lora" in args.methods:
        lora = LoraConfig(
            task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]
        )
        # LoRA layers inside a copy; our loop trains them (PEFT keeps them fp32 on a bf16 base)
        ours = get_peft_model(copy.deepcopy(model), lora).get_base_model()
        theirs = get_peft_model(copy.deepcopy(model), lora)
        methods += [
            Method(
                "lora",
                f"clinprompt LoRA ({dtype})",
                clinprompt_step(PromptObjective(ours, None, train_model=True), examples, pad),
                bucketed,
                dtype,
            ),
            Method(
                "peft_lora_same_batches",
                f"PEFT LoRA ({dtype}), the same bucketed batches",
                peft_step(theirs, examples, pad),
                bucketed,
                dtype,
                side="peer",
            ),
        ]
    if "distill" in args.methods:
        teachers = torch.stack(
            [SoftPrompt.create(p, emb, "vocab", seed=s).weight.detach() for s in range(4)]
        ).to(bb.device)  # (K, P, D)
        start = time.perf_counter()
        cache = TeacherCache.build(model, teachers, examples, pad_id=pad, top_k=64, batch_size=8)
        info["teacher_cache_build_s"] = round(time.perf_counter() - start, 2)

        def student() -> MultitaskPrompt:
            return MultitaskPrompt.create(teachers.mean(0), 4).to(bb.device)

        methods += [
            Method(
                "distill",
                f"clinprompt distill ({dtype})",
                clinprompt_step(DistillObjective(model, student(), teachers), examples, pad),
                bucketed,
                dtype,
            ),
            Method(
                "distill_cached",
                f"clinprompt distill, cached teacher ({dtype})",
                clinprompt_step(
                    DistillObjective(model, student(), teachers, cache=cache), examples, pad
                ),
                bucketed,
                dtype,
            ),
        ]
    return methods, info


def figures_record(
    methods: list[Method],
    bb: Backbone,
    command: str,
    settings: dict[str, Any],
    extra: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """The ``--json`` object: each method's figures by side, and the named ratios."""
    by = {m.key: m for m in methods}
    tps = {k: m.tokens_per_s for k, m in by.items()}
    ratios = {
        "auto_vs_fp32": ratio(tps["pt"], tps["pt_fp32"]),
        "vs_peft_same_batches": ratio(tps["pt"], tps["peft_pt_same_batches"]),
        "vs_peft_own_batches": ratio(tps["pt"], tps["peft_pt_own_batches"]),
        "lm_head_lever_alone": ratio(tps["pt_unbucketed"], tps["peft_pt_own_batches"]),
        "prompt_sharing_lever": ratio(tps["pt"], tps["pt_prompt_per_row"]),
    }
    if "lora" in by:
        ratios["lora_vs_peft_lora_same_batches"] = ratio(tps["lora"], tps["peft_lora_same_batches"])
    if "distill" in by:
        # a distillation step's time relative to a PT step's (lower is better)
        ratios["distill_step_time_vs_pt"] = ratio(tps["pt"], tps["distill"])
        ratios["distill_cached_step_time_vs_pt"] = ratio(tps["pt"], tps["distill_cached"])
    choice = bb.dtype_choice.to_dict() if bb.dtype_choice else {"dtype": dtype_name(bb.dtype)}
    return bench_record(
        "train_speed",
        command,
        choice,
        {m.key: m.to_dict() for m in methods if m.side == "figures"} | extra,
        {m.key: m.to_dict() for m in methods if m.side == "peer"},
        ratios,
        settings,
        notes,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = command_of("train_speed.py", argv)

    # ---- setup: the backbone at --dtype and an fp32 one, the examples, the methods
    flops_start = gflops()
    bb, fp32 = load_pair(args)
    examples = make_examples(args.examples, args.seed)
    methods, info = build_methods(args, bb, fp32, examples)
    notes = []
    if bb is fp32:
        why = bb.dtype_choice.reason if bb.dtype_choice else "fp32"
        notes.append(
            f"--dtype {args.dtype} resolved to fp32 on this machine ({why}): the PT rows at "
            f"--dtype {args.dtype} and fp32 run the same computation, so auto_vs_fp32 shows "
            "only this run's noise; bf16 speed cannot be measured here"
        )

    # ---- measure
    run_interleaved(methods, examples)
    flops_end = gflops()
    profile: dict[str, Any] = {}
    if args.profile:
        pt = methods[0]
        profile["pt_step"] = op_shares(lambda: pt.step(pt.batches[1 % len(pt.batches)]))
        objective = PromptObjective(
            bb.model,
            SoftPrompt.create(args.prompt_tokens, bb.model.get_input_embeddings().weight).to(
                bb.device
            ),
        )
        profile["dev_loss_pass"] = op_shares(
            lambda: evaluate_loss(objective, examples, bb.tokenizer.pad_token_id, 16)
        )

    # ---- report
    lengths = [len(x) for x in examples]
    settings = {
        "backbone": bb.name,
        "examples": args.examples,
        "mean_real_tokens": round(sum(lengths) / len(lengths), 1),
        "batch_size": args.batch_size,
        "prompt_tokens": args.prompt_tokens,
        "timed_steps_per_method": len(methods[0].batches),
        "device": str(bb.device),
        "fp32_matmul_gflops_start_end": [round(flops_start, 1), round(flops_end, 1)],
    }
    record = figures_record(
        methods, bb, command, settings, {"profile": profile} if profile else {}, notes
    )
    print(
        f"\n{command}\n{bb.name} on {bb.device}, {torch.get_num_threads()} threads, backbone "
        f"{record['dtype'].get('dtype')} ({record['dtype'].get('reason', '')}); {args.examples} "
        f"examples (mean {settings['mean_real_tokens']:.0f} real tokens), batch {args.batch_size}, "
        f"P={args.prompt_tokens}, {len(methods[0].batches)} timed steps per method (interleaved); "
        f"padding {info['padding_share_bucketed']:.0%} of positions bucketed, "
        f"{info['padding_share_data_order']:.0%} in data order; fp32 matmul {flops_start:.1f} "
        f"GFLOP/s at the start, {flops_end:.1f} at the end\n"
    )
    for note in notes:
        print(f"NOTE: {note}\n")
    print("| step | useful tokens/s | s per step |\n|---|---:|---:|")
    for m in methods:
        print(f"| {m.name} | {m.tokens_per_s:.1f} | {m.seconds / len(m.batches):.2f} |")
    r = record["ratios"]
    print(
        f"\nclinprompt PT / PEFT PROMPT_TUNING on the same batches: {r['vs_peft_same_batches']}x "
        f"(goal >= 1.5x)\nclinprompt PT --dtype {args.dtype} / fp32: {r['auto_vs_fp32']}x "
        f"(goal >= 2.0x on an AMX machine)\nsecond lines: PEFT on its own unbucketed batches "
        f"{r['vs_peft_own_batches']}x; the LM-head lever alone (both unbucketed) "
        f"{r['lm_head_lever_alone']}x; each prompt run once per batch instead of per row "
        f"{r['prompt_sharing_lever']}x"
    )
    if "lora_vs_peft_lora_same_batches" in r:
        print(f"clinprompt LoRA / PEFT LoRA, same batches: {r['lora_vs_peft_lora_same_batches']}x")
    if "distill_step_time_vs_pt" in r:
        print(
            f"distill step / PT step: {r['distill_step_time_vs_pt']}x the time (goal <= 1.6x); "
            f"with the teacher cache {r['distill_cached_step_time_vs_pt']}x "
            f"(+ {info['teacher_cache_build_s']:.1f} s once to build the cache)"
        )
    for name, prof in profile.items():
        shares = ", ".join(f"{k} {v:.0%}" for k, v in prof["shares"].items())
        print(
            f"profile of one {name.replace('_', ' ')}: {prof['wall_s']:.2f} s wall, "
            f"{prof['outside_ops_share']:.0%} outside ops (Python, dispatch); {shares}"
        )
    record["figures"]["padding"] = {k: v for k, v in info.items() if k.startswith("padding_share")}
    if "teacher_cache_build_s" in info:
        record["figures"]["teacher_cache_build_s"] = info["teacher_cache_build_s"]
    write_record(args.json, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
