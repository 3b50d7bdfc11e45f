"""A run's learning-rate searches judged by dev scores instead of dev loss (a diagnostic).

    python bench/search_scores.py --run-dir RUN [--targets T ...] [--methods pt lora mpt]
        [--split dev] [--limit 50] [--out RUN/search_scores]

The search (``clinprompt.train.lr_search``) ranks every candidate rate by its best dev loss. This
script scores each candidate's weights at that best dev loss (``x<m>/best.safetensors``) on the
target's split with ``clinprompt evaluate``, with the generation budgets of the run's own test
evaluation of that method (``RUN/eval/<method>/<target>/full/config.json``), and prints per search
the rate the loss picks and the rate the score picks (ties to the smaller rate), then per method
how many picks differ and the mean score of each pick. The candidates become artifacts that
``evaluate`` reads: PT's prompt file as it is, MPT's P* ⊙ (u vᵀ) composed to one (P, D) prompt,
LoRA's weights written as a PEFT adapter with the configuration of the run's full-pool adapter.

Resumable: a candidate with ``metrics.json`` under ``--out`` is not scored again. Selection never
reads this: it runs on dev, to weigh the search's rule, not to tune a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from clinprompt.prompts.soft_prompt import MultitaskPrompt
from figures import command_of

METHODS = ("pt", "lora", "mpt")


def candidate_artifact(method: str, run_dir: Path, candidate: Path, out: Path) -> Path:
    """The path ``clinprompt evaluate --artifact`` takes for one search candidate."""
    weights = candidate / "best.safetensors"
    if method == "pt":
        return weights
    out.mkdir(parents=True, exist_ok=True)
    if method == "mpt":
        w = load_file(weights)
        prompt = MultitaskPrompt(w["prompt.shared"], w["prompt.cols"], w["prompt.rows"])
        path = out / "prompt.safetensors"
        save_file({"prompt": prompt.task_prompt(0).detach().contiguous()}, path)
        return path
    target = candidate.parent.name
    full = run_dir / "baselines" / "lora" / target / "full" / "adapter"
    adapter = out / "adapter"
    adapter.mkdir(exist_ok=True)
    renamed = {
        "base_model." + k.replace(".default.", "."): v for k, v in load_file(weights).items()
    }
    expected = set(load_file(full / "adapter_model.safetensors"))
    if set(renamed) != expected:
        raise SystemExit(f"{weights}: its LoRA weights do not match {full}'s keys")
    save_file(renamed, adapter / "adapter_model.safetensors")
    for name in ("adapter_config.json", "clinprompt_task.json"):
        shutil.copy(full / name, adapter / name)
    return adapter


def score(
    run_dir: Path, method: str, target: str, artifact: Path, args: argparse.Namespace, out: Path
) -> float:
    """The candidate's primary metric on ``args.split`` (×100), evaluating it unless done."""
    metrics = out / "metrics.json"
    if not metrics.exists():
        test = json.loads((run_dir / "eval" / method / target / "full" / "config.json").read_text())
        cmd = [sys.executable, "-m", "clinprompt", "evaluate", "--dataset", target]
        cmd += ["--artifact", str(artifact), "--split", args.split, "--limit", str(args.limit)]
        cmd += ["--data-root", test["data_root"], "--out", str(out)]
        cmd += ["--max-input-tokens", str(test["max_input_tokens"])]
        if test.get("max_new_tokens") is not None:
            cmd += ["--max-new-tokens", str(test["max_new_tokens"])]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    record = json.loads(metrics.read_text())
    return 100 * record["metrics"][record["primary_metric"]]


def search_rows(run_dir: Path, method: str, target: str, args: argparse.Namespace) -> list[Any]:
    """``(rate, best dev loss, score)`` of every candidate of one search, by rate."""
    search = json.loads((run_dir / "lr_search" / method / target / "search.json").read_text())
    rows = []
    for cand in search["candidates"]:
        run = run_dir / "lr_search" / method / target / Path(cand["run"]).name
        out = args.out / method / target / run.name
        value = score(
            run_dir, method, target, candidate_artifact(method, run_dir, run, out), args, out
        )
        rows.append((next(iter(cand["lr"].values())), cand["best_dev_loss"], value))
    return sorted(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--targets", nargs="*", help="default: every target the run searched")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--out", type=Path, help="default: RUN/search_scores")
    args = parser.parse_args(argv)
    args.out = args.out or args.run_dir / "search_scores"
    print(command_of("search_scores.py", argv))
    print("\n| method | target | rate: best dev loss / score | by dev loss | by score |")
    print("|---|---|---|---|---|")
    summary = {}
    for method in args.methods:
        searched = sorted(p.name for p in (args.run_dir / "lr_search" / method).iterdir())
        picks = []
        for target in args.targets or searched:
            rows = search_rows(args.run_dir, method, target, args)
            by_loss = min(rows, key=lambda r: (r[1], r[0]))
            by_score = max(rows, key=lambda r: (r[2], -r[0]))
            picks.append((by_loss, by_score))
            cells = ", ".join(f"{r[0]:.3g}: {r[1]:.3f} / {r[2]:.1f}" for r in rows)
            print(
                f"| {method} | {target} | {cells} | {by_loss[0]:.3g} ({by_loss[2]:.1f}) "
                f"| {by_score[0]:.3g} ({by_score[2]:.1f}) |"
            )
        summary[method] = (
            sum(a[0] != b[0] for a, b in picks),
            len(picks),
            statistics.mean(a[2] for a, _ in picks),
            statistics.mean(b[2] for _, b in picks),
        )
    print()
    for method, (differ, n, loss_mean, score_mean) in summary.items():
        print(
            f"{method}: the score picks another rate in {differ} of {n} searches; mean "
            f"{args.split} score of the picks {loss_mean:.1f} (by loss) vs {score_mean:.1f} (by score)"
        )


if __name__ == "__main__":
    main()
