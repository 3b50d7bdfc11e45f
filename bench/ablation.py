"""Ablation of MPT's distillation: which loss terms, one learning rate or two.

    python bench/ablation.py --profile cpu --data-root ../shared/data [--out runs/ablation]
        [--variants lm,lm-kl,lm-hidden,lm-kl-hidden,lm-kl-hidden-2lr] [--two-rates 0.1,1.0]
        [--test] [--limit N] [--json PATH] [--targets a,b] [--sources c,d] [key=value ...]

Variants (each distils P* from the same teachers, then adapts it to every target on its full
training data, seed 0, with the profile's budgets):

    lm                 distill.terms [lm]
    lm-kl              [lm, logits]
    lm-hidden          [lm, hidden]
    lm-kl-hidden       [lm, logits, hidden]            (one rate: each stage's train.lr)
    lm-kl-hidden-input [lm, logits, hidden], the hidden term at every input position
    lm-kl-hidden-mid   [lm, logits, hidden], the hidden term at layer 15 and the last
    lm-kl-hidden-2lr   [lm, logits, hidden], two rates in distillation and adaptation:
                       P* at a x the stage's train.lr, the factors u, v at b x it
                       (--two-rates a,b; default 0.1,1.0: an Adam step moves an entry by about
                       the rate, P* entries start near the embeddings' size, about 0.1 for
                       SmolLM2, the factors at 1, so 0.1 x for P* gives both the same relative
                       step)

The hidden term uses the profile's ``distill.hidden_layers``/``hidden_positions`` (override
them to ablate those too). Reported per variant: distillation's best dev loss, each target's
best dev loss after adaptation (the loop's own evaluation on the target's DEV split) and their
mean; with ``--test``, each target's test score through ``evaluate_run`` (select on dev, never
on test). A table on stdout, ``OUT/ablation.md`` and ``OUT/ablation.json`` (``--json`` writes
a copy elsewhere).

Resumable: the teachers are trained once (``OUT/teachers``) and copied into one run directory
per variant (``OUT/<variant>``); re-running the same command skips every finished stage, target
and evaluation. Dotted overrides apply to every variant (a different override is a different
experiment: give it its own ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from clinprompt.artifacts import read_json, write_json
from clinprompt.config import ExperimentArgs, load_config
from clinprompt.eval.provenance import command_line, format_seconds, hardware
from clinprompt.eval.runs import evaluation_dir
from clinprompt.recipes.evaluate import evaluate_run
from clinprompt.recipes.run import run_experiment
from clinprompt.train.data import suite_tasks
from clinprompt.train.workspace import RunLayout, load_run_backbone

# name → (distill.terms, two rates, more overrides of the hidden-state term)
VARIANTS: dict[str, tuple[list[str], bool, list[str]]] = {
    "lm": (["lm"], False, []),
    "lm-kl": (["lm", "logits"], False, []),
    "lm-hidden": (["lm", "hidden"], False, []),
    "lm-kl-hidden": (["lm", "logits", "hidden"], False, []),
    "lm-kl-hidden-2lr": (["lm", "logits", "hidden"], True, []),
    # where the hidden term looks: every input position (not only the answer's), or a middle
    # layer as well as the last
    "lm-kl-hidden-input": (["lm", "logits", "hidden"], False, ["distill.hidden_positions=input"]),
    "lm-kl-hidden-mid": (["lm", "logits", "hidden"], False, ["distill.hidden_layers=[15, -1]"]),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--profile", default="cpu", help="Config profile (smoke, cpu, gpu) or a YAML file [cpu]."
    )
    parser.add_argument("--out", default="runs/ablation", help="Output folder [runs/ablation].")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"Comma-separated subset of {', '.join(VARIANTS)} [all].",
    )
    parser.add_argument(
        "--two-rates",
        default="0.1,1.0",
        help="Multipliers a,b of each stage's train.lr for P* and the factors in the two-rate "
        "variant [0.1,1.0].",
    )
    parser.add_argument("--test", action="store_true", help="Also score every target's test split.")
    parser.add_argument(
        "--limit", type=int, default=None, help="Test examples per target [data.max_test_examples]."
    )
    parser.add_argument("--json", default=None, help="Also write the results as JSON here.")
    parser.add_argument(
        "--data-root", default=None, help="Folder of the public datasets [../shared/data]."
    )
    parser.add_argument("--targets", default=None, help="Comma-separated subset of the targets.")
    parser.add_argument("--sources", default=None, help="Comma-separated subset of the sources.")
    parser.add_argument("overrides", nargs="*", help="Dotted config overrides for every variant.")
    return parser.parse_args(argv)


def variant_overrides(name: str, base: ExperimentArgs, two_rates: tuple[float, float]) -> list[str]:
    """The overrides that make ``base`` into variant ``name``."""
    terms, two, more = VARIANTS[name]
    out = [f"distill.terms=[{', '.join(terms)}]", *more]
    for stage, train in (("distill", base.distill.train), ("adapt", base.adapt.train)):
        lr = base.stage_train(train).lr
        if two:
            out += [
                f"{stage}.lr_shared={two_rates[0] * lr}",
                f"{stage}.lr_factors={two_rates[1] * lr}",
            ]
        else:
            out += [f"{stage}.lr_shared=null", f"{stage}.lr_factors=null"]
    return out


def run_variant(
    name: str, cfg: ExperimentArgs, teachers: Path, backbone: Any, test: bool, limit: int | None
) -> dict[str, Any]:
    """Distil and adapt one variant (resumable); its dev losses and, with ``test``, scores."""
    layout = RunLayout(cfg.run_dir)
    if not layout.done("teachers"):
        shutil.rmtree(layout.teachers_bank.parent, ignore_errors=True)
        shutil.copytree(teachers / "teachers", layout.teachers_bank.parent)
    t0 = time.perf_counter()
    run = run_experiment(dataclasses.replace(cfg, stages=["distill", "adapt"]), backbone=backbone)
    _, _, targets = suite_tasks(cfg.data)
    row: dict[str, Any] = {
        "distill_dev_loss": layout.done("distill")["best_dev_loss"],
        "distill_lr": layout.done("distill").get("lr"),
        "dev_loss": {
            t: read_json(layout.adapt_run(t, "full") / "result.json")["best_metric"]
            for t in targets
        },
    }
    row["mean_dev_loss"] = sum(row["dev_loss"].values()) / len(targets)
    if test:
        refs = [
            r for r in run.artifacts if r.method == "mpt" and r.setting == "full" and r.seed == 0
        ]
        evaluate_run(cfg.run_dir, cfg, refs, backbone, limit=limit)
        row["test"] = {}
        for t in targets:
            metrics = read_json(evaluation_dir(cfg.run_dir, "mpt", t, "full") / "metrics.json")
            row["test"][t] = {
                "metric": metrics["primary_metric"],
                "value": metrics["metrics"][metrics["primary_metric"]],
            }
        row["mean_test"] = sum(v["value"] for v in row["test"].values()) / len(targets)
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    return row


def _share_untrained_evaluations(first: Path, other: Path) -> None:
    """Floors and the bare backbone do not depend on the variant: evaluate them once."""
    for method in ("floor", "zeroshot"):
        src, dst = first / "eval" / method, other / "eval" / method
        if src.is_dir() and not dst.exists():
            shutil.copytree(src, dst)


def render(results: dict[str, dict[str, Any]], targets: list[str]) -> str:
    """The markdown table: distillation and per-target dev losses (lower is better), then test."""
    head = ["variant", "distill dev", *targets, "mean dev"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in results.items():
        cells = [name, f"{row['distill_dev_loss']:.4f}"]
        cells += [f"{row['dev_loss'][t]:.4f}" for t in targets]
        lines.append("| " + " | ".join([*cells, f"**{row['mean_dev_loss']:.4f}**"]) + " |")
    if any("test" in r for r in results.values()):
        some = next(r for r in results.values() if "test" in r)
        head = ["variant", *[f"{t} ({some['test'][t]['metric']})" for t in targets], "mean"]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, row in results.items():
            if "test" in row:
                cells = [f"{100 * row['test'][t]['value']:.1f}" for t in targets]
                lines.append(
                    "| " + " | ".join([name, *cells, f"**{100 * row['mean_test']:.1f}**"]) + " |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = command_line(
        ["python", "bench/ablation.py", *(sys.argv[1:] if argv is None else argv)]
    )
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose among {', '.join(VARIANTS)}")
    a, b = (float(x) for x in args.two_rates.split(","))
    out = Path(args.out)
    common = [*args.overrides, "adapt.modes=[full]", "adapt.seeds=[0]"]
    for key, value in (("data.data_root", args.data_root),):
        if value:
            common.append(f"{key}={value}")
    for key, value in (("data.targets", args.targets), ("data.sources", args.sources)):
        if value:
            common.append(f"{key}=[{value}]")
    base = load_config(args.profile, common)
    print(f"command: {command}\nhardware: {hardware()}\nout: {out}", flush=True)

    # ---- the teachers, once for every variant
    t0 = time.perf_counter()
    backbone = load_run_backbone(base.backbone)
    teachers_cfg = load_config(args.profile, [*common, f"output_dir={out / 'teachers'}"])
    run_experiment(dataclasses.replace(teachers_cfg, stages=["teachers"]), backbone=backbone)

    # ---- each variant: distill, adapt (and evaluate)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        cfg = load_config(
            args.profile,
            [*common, *variant_overrides(name, base, (a, b)), f"output_dir={out / name}"],
        )
        if names and name != names[0]:
            _share_untrained_evaluations(out / names[0], out / name)
        print(f"[{len(results) + 1}/{len(names)}] {name}", flush=True)
        results[name] = run_variant(name, cfg, out / "teachers", backbone, args.test, args.limit)

    # ---- the table
    _, _, targets = suite_tasks(base.data)
    table = render(results, targets)
    report = {
        "command": command,
        "profile": args.profile,
        "two_rates": [a, b],
        "targets": targets,
        "variants": {
            n: {"terms": VARIANTS[n][0], "overrides": VARIANTS[n][2], **r}
            for n, r in results.items()
        },
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    write_json(out / "ablation.json", report)
    (out / "ablation.md").write_text(
        f"Command: `{command}`\n\nBest dev loss (lower is better); test scores x 100.\n\n{table}\n",
        encoding="utf-8",
    )
    if args.json:
        write_json(args.json, report)
    print(table)
    print(f"wall time: {format_seconds(report['wall_s'])}   results: {out / 'ablation.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
