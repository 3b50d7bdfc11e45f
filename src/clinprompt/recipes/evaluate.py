"""Evaluate one artifact on one dataset split: predictions, metrics, config — atomically.

Reads top to bottom: resolve the artifact → load the backbone and the records → predict
(option likelihood for classification tasks, batched greedy generation otherwise, both reusing
the task prompt's keys/values) → parse → score → write ``predictions.jsonl``, ``metrics.json``
and ``config.json`` into one directory that appears only when complete.

Unparseable generations are kept and scored as wrong (the task type's ``score`` counts the
``unparseable`` flag); ``metrics.json`` says how many there were.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinprompt.artifacts import atomic_dir, write_json, write_jsonl
from clinprompt.backbone import Backbone, load_backbone
from clinprompt.data.registry import load_splits, resolve_dataset
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.eval.args import EvalArgs
from clinprompt.eval.artifact import EvalError, resolve_artifact
from clinprompt.eval.predict import answer_records, generation_budget
from clinprompt.eval.provenance import precision_record, record_provenance
from clinprompt.eval.runs import evaluation_dir, write_index
from clinprompt.tasks.base import get_task_type
from clinprompt.tasks.floors import floor_predictions

__all__ = [
    "EvalArgs",
    "EvalError",
    "EvalResult",
    "evaluate",
    "evaluate_floor",
    "evaluate_recorded_run",
    "evaluate_run",
    "select_records",
]


@dataclass
class EvalResult:
    """What an evaluation produced."""

    metrics: dict[str, float]
    primary_metric: str
    n: int
    unparseable: int
    rows: list[dict[str, Any]]
    out_dir: Path | None
    summary: dict[str, Any]

    @property
    def primary(self) -> float:
        return float(self.metrics[self.primary_metric])


def select_records(records: Records, limit: int | None, seed: int = 0) -> Records:
    """At most ``limit`` records: a seeded sample (by id hash), kept in file order.

    The same rule as the training side's ``data.max_test_examples`` (:func:`clinprompt.train.data.sample`).
    """
    from clinprompt.train.data import sample

    return sample(records, limit, seed)


def _load_records(spec: DatasetSpec, split: str, data_root: str | None) -> tuple[Records, Records]:
    """(the evaluated split, the training pool for floors: train, else dev, never the evaluated split)."""
    splits = load_splits(spec.name, data_root)
    if not splits.get(split):
        have = ", ".join(s for s, r in splits.items() if r) or "none"
        raise EvalError(
            f"dataset {spec.name!r} has no {split!r} split (it has: {have}); pass --split"
        )
    pool = next((splits[s] for s in ("train", "dev") if s != split and splits.get(s)), [])
    return splits[split], pool


# --------------------------------------------------------------------------------- scoring
def _score(
    spec: DatasetSpec, records: Records, preds: list[dict[str, Any]]
) -> tuple[dict[str, float], str, list[float]]:
    """(corpus metrics, primary metric name, per-example primary scores)."""
    task = get_task_type(spec.task_type)
    metrics = task.score(records, preds, spec)
    primary = task.primary_metric(spec)
    per_example = [
        float(task.score([g], [p], spec)[primary]) for g, p in zip(records, preds, strict=True)
    ]
    return metrics, primary, per_example


def _write(
    out_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any], config: dict[str, Any]
) -> Path:
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "predictions.jsonl", rows)
        write_json(tmp / "config.json", config)
        write_json(tmp / "metrics.json", summary)
    return out_dir


def _finish(
    spec: DatasetSpec,
    split: str,
    records: Records,
    raw: list[tuple[str, str]],
    preds: list[dict[str, Any]],
    oks: list[bool],
    out_dir: Path | None,
    extra: dict[str, Any],
    config: dict[str, Any],
    unit_texts: list[list[str]] | None = None,
) -> EvalResult:
    metrics, primary, per_example = _score(spec, records, preds)
    units = unit_texts or [[] for _ in records]
    rows = [
        {
            "id": r.get("id", str(i)),
            "raw": text,
            "prediction": p,
            "ok": ok,
            "via": via,
            "gold": r,
            "score": s,
            **({"unit_answers": own} if own else {}),  # several units: each unit's raw answer
        }
        for i, (r, (text, via), p, ok, s, own) in enumerate(
            zip(records, raw, preds, oks, per_example, units, strict=True)
        )
    ]
    mean = sum(per_example) / len(per_example)
    summary = {
        "target": spec.name,
        "dataset": spec.name,
        "split": split,
        "task_type": spec.task_type,
        "primary_metric": primary,
        "metrics": metrics,
        "n": len(records),
        "unparseable": oks.count(False),
        # True when the metric is the mean of per-example scores: the bootstrap may resample those.
        "decomposable": abs(mean - float(metrics[primary])) < 1e-9,
        "per_example_mean": mean,
        "synthetic": spec.synthetic,
        "spec": spec.to_dict(),
        **extra,
    }
    if out_dir is not None:
        _write(out_dir, rows, summary, config)
        if out_dir.parent.parent.parent.name == "eval":
            write_index(out_dir.parent.parent.parent.parent)
    return EvalResult(metrics, primary, len(records), oks.count(False), rows, out_dir, summary)


def _out_dir(args: EvalArgs, method: str) -> Path | None:
    if args.out:
        return Path(args.out)
    if args.run_dir:
        return evaluation_dir(args.run_dir, method, args.dataset, args.setting)
    return None


# ----------------------------------------------------------------------------------- recipe
def evaluate(args: EvalArgs, backbone: Backbone | None = None) -> EvalResult:
    """Evaluate ``args.artifact`` (or the bare backbone) on ``args.dataset``/``args.split``.

    Args:
        args: what to evaluate and where to write it (see :class:`EvalArgs`).
        backbone: an already loaded backbone (the demo and benchmark reuse one); default: load
            ``args.backbone``, else the artifact's backbone, else smollm2-135m.

    Returns:
        An :class:`EvalResult`; with ``run_dir``/``out`` set, also written to disk atomically.

    Raises:
        EvalError: an artifact of another task type, a bank without the task, a missing split.
    """
    started = time.perf_counter()
    # 1. what to evaluate, on what
    spec = resolve_dataset(args.dataset)  # a name, or a dataset config (checked: file:line)
    args = dataclasses.replace(args, dataset=spec.name)  # a config path → the name it registered
    artifact = resolve_artifact(args.artifact, args.task, args.dataset)
    artifact.check_task(spec)  # before any loading: a wrong pairing fails in a second
    records, _ = _load_records(spec, args.split, args.data_root)
    records = select_records(records, args.limit, args.seed)
    if backbone is None:
        name = args.backbone or (
            artifact.fingerprint.name if artifact.fingerprint else "smollm2-135m"
        )
        backbone = load_backbone(name, device=args.device, dtype=args.dtype)
    spec = artifact.check_backbone(spec, backbone)
    # 2. predict, parse
    task = get_task_type(spec.task_type)
    answers = answer_records(
        backbone,
        artifact,
        spec,
        records,
        args.max_input_tokens,
        args.max_new_tokens,
        args.batch_size,
        args.generate,
    )
    raw = [(a.text, a.via) for a in answers]
    # The parsed answers as predict made them (merged units keep whether every unit parsed).
    parsed = [a.parsed for a in answers]
    # 3. score and write
    method = args.method or artifact.method
    extra = {
        "method": method,
        "setting": args.setting,
        "artifact": artifact.describe(),
        "scoring": "generate"
        if args.generate
        else "options where the task type has candidates, else generate",
        "formulation": "generation, parsed" if args.generate else task.formulation(spec),
        "trainable_params": artifact.trainable_params,
        "backbone_params": backbone.num_parameters(),
        "backbone": backbone.fingerprint.to_dict(),
        "precision": precision_record(backbone),  # the dtype used and why
        "wall_s": round(time.perf_counter() - started, 2),
    }
    config = {
        **args.to_dict(),
        "method": method,
        "resolved_instruction": task.instruction(spec),
        "precision": extra["precision"],
    }
    return _finish(
        spec,
        args.split,
        records,
        raw,
        [p.prediction for p in parsed],
        [p.ok for p in parsed],
        _out_dir(args, method),
        extra,
        config,
        [a.unit_texts for a in answers],
    )


def evaluate_floor(args: EvalArgs, backbone_name: str | None = None) -> EvalResult:
    """Score the dataset's floor (see :mod:`clinprompt.tasks.floors`) like a method named ``floor``.

    The majority is taken over the dataset's train split when it has one. No model is loaded.
    """
    spec = resolve_dataset(args.dataset)  # a name, or a dataset config (checked: file:line)
    args = dataclasses.replace(args, dataset=spec.name)  # a config path → the name it registered
    records, pool = _load_records(spec, args.split, args.data_root)
    records = select_records(records, args.limit, args.seed)
    floor = floor_predictions(spec, records, pool)
    raw = [(str(floor.constant or ""), "floor")] * len(records)
    extra = {
        "method": "floor",
        "setting": args.setting,
        "artifact": f"floor: {floor.description}",
        "floor": floor.kind,
        "trainable_params": None,
        "backbone_params": None,
        "backbone": {"name": backbone_name or "-"},
    }
    args = dataclasses.replace(args, method="floor")
    return _finish(
        spec,
        args.split,
        records,
        raw,
        floor.predictions,
        [True] * len(records),
        _out_dir(args, "floor"),
        extra,
        args.to_dict(),
    )


# ------------------------------------------------------------------------- a whole run
def evaluate_run(
    run_dir: str | Path,
    cfg: Any,
    artifacts: list[Any],
    backbone: Backbone,
    split: str = "test",
    limit: int | None = None,
    on_start: Any = None,
) -> list[EvalResult | None]:
    """Evaluate every artifact of a run, plus each target's floor and zero-shot backbone.

    Each artifact (each training seed of each method, target and setting) goes to
    ``RUN/eval/<method>/<target>/<setting>/`` for seed 0 and ``.../<setting>.s<seed>/`` for other
    seeds; its ``metrics.json`` records ``train_seed`` and ``training`` (the ArtifactRef's
    ``seed`` and ``train``: chosen rates, search candidates, examples, steps, epochs). Floors
    and the bare backbone are untrained: seed 0, ``training`` null.

    Args:
        run_dir: the run directory; results go to ``RUN/eval/<method>/<target>/<setting>[.s<seed>]/``.
        cfg: the run's ``ExperimentArgs`` (targets, data root, seed, token limits).
        artifacts: the run's ``ArtifactRef`` list (``RunResult.artifacts``).
        backbone: the loaded backbone.
        split: the split to evaluate.
        limit: test examples per target (default ``cfg.data.max_test_examples``).
        on_start: called as ``on_start(i, total, label)`` before each evaluation (progress display).

    Returns:
        One result per evaluation; None for evaluations already on disk (skipped: resumable).
    """
    from clinprompt.artifacts import read_json
    from clinprompt.train.data import load_task, suite_tasks

    suite, _, targets = suite_tasks(cfg.data)
    limit = cfg.data.max_test_examples if limit is None else limit
    # (method, evaluation, train seed, training record or None for untrained methods)
    plan: list[tuple[str, EvalArgs, int, dict[str, Any] | None]] = []
    for target in targets:
        pool = load_task(
            target, cfg.data, suite.cap(target), max_empty_fraction=cfg.adapt.max_empty_fraction
        )
        if pool.pool_split == split:
            raise EvalError(
                f"target {target!r} was trained on its {split!r} split (it has no train or dev split); evaluating there would score training data"
            )
        budget = generation_budget(
            pool.spec, pool.train, backbone.tokenizer, cfg.data.max_target_tokens + 1
        )
        base = EvalArgs(
            dataset=target,
            split=split,
            limit=limit,
            data_root=cfg.data.data_root,
            seed=cfg.data.seed,
            max_input_tokens=cfg.data.max_input_tokens,
            max_new_tokens=budget,
            run_dir=str(run_dir),
        )
        plan.append(("floor", dataclasses.replace(base, method="floor"), 0, None))
        plan.append(
            ("zeroshot", dataclasses.replace(base, method="zeroshot", setting="k0"), 0, None)
        )
        for ref in artifacts:
            if ref.target == target:
                seed = int(getattr(ref, "seed", 0))
                out = evaluation_dir(run_dir, ref.method, target, ref.setting, seed)
                plan.append(
                    (
                        ref.method,
                        dataclasses.replace(
                            base,
                            artifact=ref.path,
                            task=ref.task,
                            method=ref.method,
                            setting=ref.setting,
                            out=str(out),
                        ),
                        seed,
                        dict(getattr(ref, "train", None) or {}),
                    )
                )
    results: list[EvalResult | None] = []
    for i, (method, args, seed, training) in enumerate(plan):
        label = f"{method} {args.dataset} {args.setting}" + (f" seed {seed}" if seed else "")
        if on_start is not None:
            on_start(i, len(plan), label)
        out = evaluation_dir(run_dir, method, args.dataset, args.setting, seed)
        record = {"train_seed": seed, "training": training}
        if (out / "metrics.json").exists():
            # Finished earlier; written before seeds were recorded, it gets its record now.
            summary = read_json(out / "metrics.json")
            if {k: summary.get(k) for k in record} != record:
                write_json(out / "metrics.json", {**summary, **record})
            results.append(None)
            continue
        result = (
            evaluate_floor(args, backbone.name) if method == "floor" else evaluate(args, backbone)
        )
        # evaluate() wrote metrics.json atomically; the training record joins it here.
        write_json(out / "metrics.json", {**result.summary, **record})
        result.summary.update(record)
        results.append(result)
    return results


def evaluate_recorded_run(
    run_dir: str | Path,
    split: str = "test",
    limit: int | None = None,
    backbone: Backbone | None = None,
    backbone_name: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    on_start: Any = None,
) -> list[EvalResult | None]:
    """Evaluate every artifact a run directory records, plus each target's floor and zero-shot
    backbone (``clinprompt evaluate --run-dir RUN --all``): :func:`evaluate_run` with the run's
    saved ``config.json`` and its recorded artifacts
    (:func:`clinprompt.recipes.target_run.recorded_artifacts`). Resumable: evaluations on disk
    are skipped.

    Args:
        run_dir: a suite run or a one-target run (``clinprompt adapt --bank``/``baseline --dataset``).
        split, limit, on_start: as for :func:`evaluate_run`.
        backbone: an already loaded backbone; default: ``backbone_name`` (else the run's) on
            ``device`` with ``dtype`` (else the run's).

    Raises:
        EvalError: no ``config.json`` or no recorded artifact in ``run_dir``.
    """
    from clinprompt.config import load_config
    from clinprompt.recipes.target_run import recorded_artifacts

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise EvalError(
            f"{run_dir} is not a run directory: {run_dir / 'config.json'} is missing (run "
            "`clinprompt run`, `clinprompt adapt --bank` or `clinprompt baseline --dataset` first)"
        )
    cfg = load_config(run_dir / "config.json")
    artifacts = recorded_artifacts(run_dir)
    if not artifacts:
        raise EvalError(
            f"{run_dir} records no trained artifact (run.json, <stage>/DONE.json, artifacts.json)"
        )
    if backbone is None:
        backbone = load_backbone(
            backbone_name or cfg.backbone.name,
            device=device or cfg.backbone.device,
            dtype=dtype or cfg.backbone.dtype,
        )
    started = time.perf_counter()
    results = evaluate_run(run_dir, cfg, artifacts, backbone, split, limit, on_start)
    ran = any(r is not None for r in results)
    seconds = round(time.perf_counter() - started, 1)
    record_provenance(
        run_dir, stages={"evaluate": {"seconds": seconds, "status": "ran" if ran else "skipped"}}
    )
    return results
