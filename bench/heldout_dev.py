"""Runs' chosen learning rates scored on dev records their search never saw (a diagnostic).

    python bench/heldout_dev.py --run-dirs RUN [RUN ...] [--methods pt lora mpt]
        [--seeds 1 2] [--limit 40] [--out runs/heldout_dev]

The learning-rate search chooses each method's rate on the target's dev records
(``data.max_dev_examples`` of them: the records the loop's dev loss and, with
``adapt.lr_search_judge: score``, the judge's dev score are taken on). Scoring a chosen candidate
on those same records flatters the rule that looked at them. This script scores each run's
full-data artifacts of the given training seeds (seeds other than 0 are trained afresh at the
chosen rates, so the search's own run is left out by default) on up to ``--limit`` dev records
*outside* the judged ones (a seeded sample, the same for every run and method), answered as the
test evaluation answers (its generation budget), and prints per method and target each run's
mean score over the seeds, then each method's average over targets.

Resumable: ``OUT/<run>/<method>/<target>/s<seed>.json`` is read back, not scored again. Selection
never reads this: it runs on dev, to compare rules for choosing rates, never on test.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from clinprompt.artifacts import read_json, write_json
from clinprompt.config import load_config
from clinprompt.data.registry import load_splits
from clinprompt.eval.artifact import resolve_artifact
from clinprompt.recipes.dev_score import dev_records, score_records
from clinprompt.recipes.target_run import recorded_artifacts
from clinprompt.train.data import load_task, sample, suite_tasks
from clinprompt.train.workspace import load_run_backbone
from figures import command_of

METHODS = ("pt", "lora", "mpt")


def heldout_records(cfg: Any, target: str, limit: int) -> tuple[Any, list[dict], int]:
    """(the target's task data, up to ``limit`` dev records outside the judged ones, how many
    dev records were judged)."""
    suite, _, _ = suite_tasks(cfg.data)
    task = load_task(
        target, cfg.data, suite.cap(target), max_empty_fraction=cfg.adapt.max_empty_fraction
    )
    judged = {str(r.get("id")) for r in dev_records(task.dev)}
    split = load_splits(task.spec, cfg.data.data_root).get("dev") or []
    if not split:
        raise SystemExit(f"{target}: no dev split of its own; nothing is held out")
    rest = [r for r in split if str(r.get("id")) not in judged]
    return task, sample(rest, limit, cfg.data.seed + 7), len(judged)


def score(backbone: Any, cfg: Any, ref: Any, task: Any, records: list[dict], out: Path) -> float:
    """The artifact's primary metric on ``records`` (cached in ``out``)."""
    if out.exists():
        return float(read_json(out)["score"])
    artifact = resolve_artifact(ref.path, ref.task, task.spec.name)
    value, _ = score_records(backbone, artifact, task.spec, task.train, records, cfg.data)
    write_json(out, {"score": value, "n": len(records), "ids": [r.get("id") for r in records]})
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dirs", nargs="+", type=Path, required=True)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("runs/heldout_dev"))
    args = parser.parse_args(argv)
    print(command_of("heldout_dev.py", argv))
    cfgs = {run: load_config(run / "config.json") for run in args.run_dirs}
    first = cfgs[args.run_dirs[0]]
    backbone = load_run_backbone(first.backbone)
    rows: dict[tuple[str, str], dict[Path, float]] = {}
    held: dict[str, tuple[int, int]] = {}
    for run, cfg in cfgs.items():
        refs = [
            r
            for r in recorded_artifacts(run)
            if r.method in args.methods and r.setting == "full" and r.seed in args.seeds
        ]
        for target in sorted({r.target for r in refs}):
            task, records, judged = heldout_records(cfg, target, args.limit)
            held[target] = (len(records), judged)
            for method in args.methods:
                mine = sorted(
                    (r for r in refs if r.target == target and r.method == method),
                    key=lambda r: r.seed,
                )
                if not mine:
                    continue
                values = [
                    score(
                        backbone,
                        cfg,
                        ref,
                        task,
                        records,
                        args.out / run.name / method / target / f"s{ref.seed}.json",
                    )
                    for ref in mine
                ]
                rows.setdefault((method, target), {})[run] = 100 * statistics.mean(values)
    names = [run.name for run in args.run_dirs]
    print(
        f"\nseeds {args.seeds}, full-data artifacts; held-out dev records per target "
        + ", ".join(f"{t}: {n} (judged {j})" for t, (n, j) in sorted(held.items()))
    )
    print("\n| method | target | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for (method, target), by_run in sorted(rows.items()):
        cells = " | ".join(f"{by_run[r]:.1f}" if r in by_run else "–" for r in args.run_dirs)
        print(f"| {method} | {target} | {cells} |")
    for method in args.methods:
        means = []
        for run in args.run_dirs:
            vals = [v[run] for (m, _), v in rows.items() if m == method and run in v]
            means.append(f"{statistics.mean(vals):.1f}" if vals else "–")
        print(f"| {method} | **average** | " + " | ".join(means) + " |")
    summary = {f"{m}/{t}": {r.name: v for r, v in by.items()} for (m, t), by in rows.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
