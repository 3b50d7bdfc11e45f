"""bf16 against fp32 on a real task: the same prompt trained both ways, dev loss curves and test score.

    python bench/precision_numerics.py [--backbone smollm2-135m] [--dataset mediqa2019_rqe]
        [--steps 40] [--eval-every 5] [--dtypes fp32,bf16] [--threads N] [--json FILE]

For each dtype in ``--dtypes`` (the first is the reference, fp32 by default): load the backbone
in that dtype, train one soft prompt on ``--dataset`` with the training loop (the same seeded
initialisation from the fp32 embeddings, the same data order, the same budgets), evaluating the
dev loss before training and every ``--eval-every`` steps; then score the final prompt on
``--test-limit`` seeded test examples with ``clinprompt evaluate``'s code. The prompt, its
gradients and AdamW's states are fp32 in every run: only the frozen backbone's compute changes.

Prints the dev loss curves side by side, each run's test metric and wall time, the largest
dev-loss gap; ``--json FILE`` writes one object (``bench/figures.py``): ``peer`` holds the
reference run (fp32), ``figures`` the others, and ``ratios`` name ``final_dev_loss_<d>_vs_<ref>``
and ``train_speed_<d>_vs_<ref>``; ``differences`` the test-metric gaps.

On a CPU without bf16 units (bf16 matmul ~100x slower than fp32) the bf16 run on SmolLM2 takes
hours: there, check the script with ``--backbone tiny-llama --steps 2`` and run it for real on
a machine with AMX (or a GPU, ``--device cuda``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from clinprompt.artifacts import save_tensors
from clinprompt.backbone import load_backbone
from clinprompt.config import DataArgs, TrainArgs
from clinprompt.precision import DTYPE_CHOICES
from clinprompt.prompts import SoftPrompt
from clinprompt.recipes.evaluate import EvalArgs, evaluate
from clinprompt.train import PromptObjective, train
from clinprompt.train.data import encode_records, instruction_of, load_task
from clinprompt.train.step import evaluate_loss

sys.path.insert(0, str(Path(__file__).parent))
from figures import bench_record, command_of, ratio, write_record  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="smollm2-135m", help="tiny-llama checks the script")
    ap.add_argument("--device", default="cpu", help="cpu | cuda [cpu]")
    ap.add_argument(
        "--dataset",
        default="mediqa2019_rqe",
        help="a registered dataset [mediqa2019_rqe: question entailment, option-scored]",
    )
    ap.add_argument("--data-root", default=None, help="public datasets [../shared/data]")
    ap.add_argument("--dtypes", default="fp32,bf16", help="the reference first [fp32,bf16]")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per run [40]")
    ap.add_argument("--eval-every", type=int, default=5, help="dev loss every N steps [5]")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--train-examples", type=int, default=200)
    ap.add_argument("--dev-examples", type=int, default=32)
    ap.add_argument("--test-limit", type=int, default=100)
    ap.add_argument("--max-input-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures")
    args = ap.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if len(args.dtypes) < 2 or not set(args.dtypes) <= set(DTYPE_CHOICES) - {"auto"}:
        ap.error("--dtypes: two or more of fp32, bf16, fp16 (the reference first)")
    return args


def train_one(
    args: argparse.Namespace, dtype: str, init: torch.Tensor | None, out: Path
) -> tuple[dict[str, Any], torch.Tensor]:
    """Train and test one prompt with the backbone in ``dtype``; returns (its figures, the init)."""
    bb = load_backbone(args.backbone, device=args.device, dtype=dtype)
    data = DataArgs(
        data_root=args.data_root,
        max_train_examples=args.train_examples,
        max_dev_examples=args.dev_examples,
        max_input_tokens=args.max_input_tokens,
        max_target_tokens=64,
        seed=args.seed,
    )
    task = load_task(args.dataset, data)
    tok = bb.tokenizer
    train_set = encode_records(task.train, task.spec, tok, data)
    dev_set = encode_records(task.dev, task.spec, tok, data)
    if init is None:  # from the reference run's embeddings: every run starts from the same prompt
        text = tok(instruction_of(task.spec), add_special_tokens=False)["input_ids"]
        emb = bb.model.get_input_embeddings().weight.float()
        init = SoftPrompt.create(args.prompt_tokens, emb, "vocab", text, args.seed).weight.detach()
    prompt = SoftPrompt(init.clone()).to(bb.device)  # fp32 master weights
    objective = PromptObjective(bb.model, prompt)
    targs = TrainArgs(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=0.1,
        eval_every=args.eval_every,
        eval_examples=args.dev_examples,
        eval_batch_size=8,
        log_every=1,
        progress=False,
        seed=args.seed,
    )
    start = time.perf_counter()
    dev0 = evaluate_loss(objective, dev_set, tok.pad_token_id, targs.eval_batch_size)
    result = train(
        objective, train_set, targs, out / "run", pad_id=tok.pad_token_id, dev_set=dev_set
    )
    train_s = time.perf_counter() - start
    rows = [
        r for r in map(_json_line, (out / "run" / "metrics.jsonl").read_text().splitlines()) if r
    ]
    curve = [[0, round(dev0, 5)]] + [
        [r["step"], round(r["dev_loss"], 5)] for r in rows if "dev_loss" in r
    ]
    train_loss = [[r["step"], round(r["loss"], 5)] for r in rows if "loss" in r]
    # the prompt as it ends (the best on dev), scored like `clinprompt evaluate --artifact`
    save_tensors(out / "prompt.safetensors", {"prompt": prompt.weight.detach().float().cpu()})
    start = time.perf_counter()
    scored = evaluate(
        EvalArgs(
            dataset=args.dataset,
            artifact=str(out / "prompt.safetensors"),
            limit=args.test_limit,
            data_root=args.data_root,
            max_input_tokens=args.max_input_tokens,
            seed=args.seed,
            dtype=dtype,
        ),
        backbone=bb,
    )
    test_s = time.perf_counter() - start
    figures = {
        "precision": bb.dtype_choice.to_dict() if bb.dtype_choice else {"dtype": dtype},
        "dev_loss_curve": curve,  # [step, dev loss], step 0 = before training
        "train_loss": train_loss,  # [step, loss of that step's batch]
        "best_dev_loss": result.best_metric,
        "best_step": result.best_step,
        "test_primary_metric": scored.primary_metric,
        "test_primary": round(scored.primary, 5),
        "test_metrics": {k: round(float(v), 5) for k, v in scored.metrics.items()},
        "test_n": scored.n,
        "train_s": round(train_s, 2),
        "test_s": round(test_s, 2),
        "prompt_dtype": str(prompt.weight.dtype).removeprefix("torch."),
    }
    del bb, objective
    return figures, init


def _json_line(line: str) -> dict[str, Any] | None:
    return json.loads(line) if line.strip() else None


def numerics_record(runs: dict[str, dict[str, Any]], args: argparse.Namespace, command: str):
    """The ``--json`` object: the reference run as the peer, the others as figures."""
    ref, *others = args.dtypes
    base = runs[ref]
    ratios: dict[str, float | None] = {}
    differences: dict[str, float] = {}
    for d in others:
        run = runs[d]
        ratios[f"final_dev_loss_{d}_vs_{ref}"] = ratio(
            run["dev_loss_curve"][-1][1], base["dev_loss_curve"][-1][1]
        )
        ratios[f"train_speed_{d}_vs_{ref}"] = ratio(base["train_s"], run["train_s"])
        differences[f"test_primary_{d}_minus_{ref}"] = round(
            run["test_primary"] - base["test_primary"], 5
        )
        gaps = [
            abs(a[1] - b[1])
            for a, b in zip(run["dev_loss_curve"], base["dev_loss_curve"], strict=False)
        ]
        differences[f"max_abs_dev_loss_gap_{d}_vs_{ref}"] = round(max(gaps), 5)
    settings = {
        k: getattr(args, k)
        for k in (
            "backbone",
            "dataset",
            "steps",
            "eval_every",
            "batch_size",
            "prompt_tokens",
            "lr",
            "train_examples",
            "dev_examples",
            "test_limit",
            "seed",
        )
    }
    record = bench_record(
        "precision_numerics",
        command,
        {d: runs[d]["precision"] for d in args.dtypes},
        {d: runs[d] for d in others},
        {ref: base},
        ratios,
        settings,
        ["the prompt, its gradients and AdamW's states are fp32 in every run"],
    )
    record["differences"] = differences
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = command_of("precision_numerics.py", argv)
    runs: dict[str, dict[str, Any]] = {}
    init = None
    with tempfile.TemporaryDirectory(prefix="clinprompt-numerics-") as tmp:
        for d in args.dtypes:
            print(f"training in {d} ...", flush=True)
            runs[d], init = train_one(args, d, init, Path(tmp) / d)
    record = numerics_record(runs, args, command)

    print(f"\n{command}")
    print(
        f"{args.backbone} on {args.device}, {torch.get_num_threads()} threads; {args.dataset}: "
        f"{args.steps} steps of {args.batch_size}, P={args.prompt_tokens}, lr {args.lr}, "
        f"dev {args.dev_examples} examples, test {args.test_limit}"
    )
    for d in args.dtypes:
        p = runs[d]["precision"]
        print(
            f"  {d}: backbone {p.get('dtype')} ({p.get('reason')}), prompt {runs[d]['prompt_dtype']}"
        )
    print("\n| step | " + " | ".join(f"dev loss {d}" for d in args.dtypes) + " |")
    print("|---:|" + "---:|" * len(args.dtypes))
    for i, (step, _) in enumerate(runs[args.dtypes[0]]["dev_loss_curve"]):
        cells = [
            f"{runs[d]['dev_loss_curve'][i][1]:.4f}" if i < len(runs[d]["dev_loss_curve"]) else "—"
            for d in args.dtypes
        ]
        print(f"| {step} | " + " | ".join(cells) + " |")
    print(
        "\n| dtype | test "
        + runs[args.dtypes[0]]["test_primary_metric"]
        + " | n | train s | test s |"
    )
    print("|---|---:|---:|---:|---:|")
    for d in args.dtypes:
        r = runs[d]
        print(
            f"| {d} | {r['test_primary']:.4f} | {r['test_n']} | {r['train_s']:.1f} | {r['test_s']:.1f} |"
        )
    print(
        "\n"
        + ", ".join(f"{k} {v}" for k, v in {**record["ratios"], **record["differences"]}.items())
    )
    write_record(args.json, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
