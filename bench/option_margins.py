"""What a run's option-scored answers rest on: content, or a prior the threshold decides.

    python bench/option_margins.py --run-dir RUN --target ade_corpus_v2 [--split dev]
        [--limit 100] [--setting full] [--json PATH]

For every artifact the run records for ``--target`` and ``--setting`` (each method, each
training seed), the candidates of every unit of the split (``TaskType.units``, e.g. one per
ordered entity pair) are scored exactly as evaluation scores them
(:func:`clinprompt.eval.predict.unit_option_scores`), and the script prints:

* the answers' distribution against the gold one;
* **AUC**: per gold label, how often a unit of that label has a larger margin (its score minus
  the best other candidate's) than a unit of another label, averaged over the labels present.
  0.5 means the scores do not rank units by their content, whatever the answers' accuracy;
* the primary metric of the answers (records merged from their units and scored by the task
  type, as evaluation does), and of rules that read no text: each candidate answered to every
  unit, and for pair-given RE the majority label of each (head type, tail type) signature of the
  run's training pool (the types are written in every pair's input).

Selection never reads this: it runs on dev by default, to explain a test table, not to tune one.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from figures import bench_record, command_of, write_record

ROOT = Path(__file__).resolve().parents[1]


def margin_auc(scores: Sequence[Sequence[float]], gold: Sequence[int]) -> float | None:
    """Mean over gold labels c present (with units of another label) of the probability that a
    unit of label c has a larger margin for c than a unit of another label (ties count half).

    The margin of unit i for c is ``scores[i][c] - max(scores[i][j], j != c)``. None when fewer
    than two labels occur in ``gold``.
    """
    aucs = []
    for c in sorted(set(gold)):

        def margin(s: Sequence[float], c: int = c) -> float:
            return s[c] - max(x for j, x in enumerate(s) if j != c)

        pos = [margin(s) for s, g in zip(scores, gold, strict=True) if g == c]
        neg = [margin(s) for s, g in zip(scores, gold, strict=True) if g != c]
        if not pos or not neg:
            continue
        wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
        aucs.append(wins / (len(pos) * len(neg)))
    return sum(aucs) / len(aucs) if aucs else None


def signature_rule(
    train_units: Sequence[tuple[Any, str]],
) -> Callable[[Any], str | None]:
    """A rule that answers each unit with the majority answer of its signature in training.

    ``train_units`` are (signature, answer) pairs; ties go to the alphabetically first answer;
    a signature training never saw gets None (the caller decides).
    """
    counts: dict[Any, Counter[str]] = {}
    for sig, answer in train_units:
        counts.setdefault(sig, Counter())[answer] += 1
    best = {
        sig: sorted(c, key=lambda a, c=c: (-c[a], a))[0]  # type: ignore[misc]
        for sig, c in counts.items()
    }
    return best.get


def pair_signature(unit: dict[str, Any]) -> tuple[str, str] | None:
    """(head type, tail type) of a pair-given RE unit; None for any other unit."""
    pair = unit.get("pair")
    if not isinstance(pair, dict):
        return None
    types = {e.get("id"): e.get("type") for e in unit.get("entities") or []}
    return (str(types.get(pair.get("head"))), str(types.get(pair.get("tail"))))


def record_metric(task: Any, spec: Any, records: list[dict], answers: list[list[str]]) -> float:
    """The task type's primary metric of per-unit answers, merged per record as evaluation does."""
    from clinprompt.eval.predict import merge_unit_answers

    preds = [
        merge_unit_answers(task, spec, record, task.units(record, spec), said).prediction
        for record, said in zip(records, answers, strict=True)
    ]
    return float(task.score(records, preds, spec)[task.primary_metric(spec)])


def _per_record(records: list[dict], counts: list[int], flat: list[str]) -> list[list[str]]:
    out, at = [], 0
    for n in counts:
        out.append(flat[at : at + n])
        at += n
    assert at == len(flat)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="A suite run (config.json, artifacts).")
    parser.add_argument("--target", required=True, help="A target of the run.")
    parser.add_argument("--split", default="dev", help="The split to score (default: dev).")
    parser.add_argument("--limit", type=int, default=100, help="Records (a seeded sample).")
    parser.add_argument("--setting", default="full", help="full, k16, ... (default: full).")
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args(argv)

    from clinprompt.backbone import load_backbone
    from clinprompt.config import load_config
    from clinprompt.data.registry import load_splits
    from clinprompt.eval.artifact import resolve_artifact
    from clinprompt.eval.predict import unit_option_scores
    from clinprompt.recipes.evaluate import select_records
    from clinprompt.recipes.target_run import recorded_artifacts
    from clinprompt.train.data import load_task, suite_tasks

    run = Path(args.run_dir)
    cfg = load_config(run / "config.json")
    refs = [
        r for r in recorded_artifacts(run) if r.target == args.target and r.setting == args.setting
    ]
    if not refs:
        parser.error(f"{run} records no {args.setting!r} artifact for {args.target!r}")
    suite, _, _ = suite_tasks(cfg.data)
    pool = load_task(
        args.target,
        cfg.data,
        suite.cap(args.target),
        max_empty_fraction=cfg.adapt.max_empty_fraction,
    )
    spec = pool.spec
    from clinprompt.tasks.base import get_task_type

    task = get_task_type(spec.task_type)
    records = select_records(
        load_splits(spec.name, cfg.data.data_root)[args.split], args.limit, cfg.data.seed
    )
    unit_lists = [task.units(r, spec) for r in records]
    units = [u for us in unit_lists for u in us]
    cands = [task.candidates(u, spec) for u in units]
    if not units or any(c is None for c in cands) or len({tuple(c) for c in cands}) != 1:
        parser.error(
            f"{args.target}: this script reads targets whose units share one candidate set"
        )
    labels = list(cands[0])
    gold = [task.format_target(u, spec) for u in units]
    gold_idx = [labels.index(g) for g in gold]
    counts = [len(us) for us in unit_lists]

    rules: dict[str, list[str]] = {f"always `{c}`": [c] * len(units) for c in labels}
    if all(pair_signature(u) for u in units):
        train_units = pool.train  # load_task's pool is already units
        rule = signature_rule(
            [(pair_signature(u), task.format_target(u, spec)) for u in train_units]
        )
        majority = Counter(task.format_target(u, spec) for u in train_units).most_common(1)[0][0]
        rules["type-signature majority (training pool)"] = [
            rule(pair_signature(u)) or majority for u in units
        ]

    backbone = load_backbone(
        cfg.backbone.name, device=cfg.backbone.device, dtype=cfg.backbone.dtype
    )
    rows: list[dict[str, Any]] = []
    for ref in sorted(refs, key=lambda r: (r.method, int(getattr(r, "seed", 0)))):
        artifact = resolve_artifact(ref.path, ref.task, spec.name)
        conditioned_spec = artifact.check_backbone(spec, backbone)
        scores = unit_option_scores(
            backbone, artifact, conditioned_spec, units, cfg.data.max_input_tokens
        )
        said = [labels[max(range(len(s)), key=s.__getitem__)] for s in scores]
        rows.append(
            {
                "method": ref.method,
                "seed": int(getattr(ref, "seed", 0)),
                "answers": dict(Counter(said)),
                "auc": margin_auc(scores, gold_idx),
                "primary": record_metric(task, spec, records, _per_record(records, counts, said)),
            }
        )
        print(f"  scored {ref.method} seed {rows[-1]['seed']}", file=sys.stderr, flush=True)
    reference = [
        {
            "rule": name,
            "primary": record_metric(task, spec, records, _per_record(records, counts, said)),
        }
        for name, said in rules.items()
    ]

    command = command_of("option_margins.py", argv)
    metric = task.primary_metric(spec)
    print(f"\n{command}\n")
    print(
        f"{args.target}, {args.split}: {len(records)} records, {len(units)} units; "
        f"gold {dict(Counter(gold))}\n"
    )
    print(f"| method | seed | answers | AUC | {metric} ×100 |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        auc = "–" if r["auc"] is None else f"{r['auc']:.2f}"
        print(
            f"| {r['method']} | {r['seed']} | {r['answers']} | {auc} | {100 * r['primary']:.1f} |"
        )
    for r in reference:
        print(f"| rule: {r['rule']} | – | – | – | {100 * r['primary']:.1f} |")
    if args.json:
        from clinprompt.eval.provenance import precision_record

        record = bench_record(
            "option_margins",
            command,
            precision_record(backbone),
            {"metric": metric, "artifacts": rows},
            {"rules": reference},  # the references: rules that read no text
            {},
            settings={
                "run_dir": str(run),
                "target": args.target,
                "split": args.split,
                "setting": args.setting,
                "records": len(records),
                "units": len(units),
                "gold": dict(Counter(gold)),
            },
        )
        write_record(Path(args.json), record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
