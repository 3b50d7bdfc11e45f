"""A learning-rate search candidate judged by its dev score (``adapt.lr_search_judge: score``).

The search (:mod:`clinprompt.train.lr_search`) trains each candidate rate; this module answers the
target's dev records with one candidate's weights at its best dev loss, exactly as the test
evaluation answers (:func:`clinprompt.eval.predict.answer_records`: option scoring where the task
type has candidates, else greedy generation within the run's generation budget), and scores them
with the task's primary metric. Each method's recipe rebuilds its trainable objects (a prompt, an
MPT target prompt, LoRA layers), loads ``RUN_DIR/best.safetensors`` into them and calls
:func:`judge_candidate`.

Cached: :func:`judge_candidate` writes ``RUN_DIR/dev_score.json`` (metric, score, examples,
unparseable answers, the seconds answering took, each record's raw answer); a recipe's judge
wrapped in :func:`cached` reads it back before it rebuilds or loads anything, so a resumed search
pays for neither twice.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from clinprompt.artifacts import read_json, write_json
from clinprompt.backbone import Backbone
from clinprompt.config import DataArgs, ExperimentArgs
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.eval.artifact import Artifact
from clinprompt.eval.predict import Answer, answer_records, generation_budget
from clinprompt.tasks.base import get_task_type
from clinprompt.tasks.relations import PAIR
from clinprompt.train.checkpoint import load_weights
from clinprompt.train.objectives import PromptObjective
from clinprompt.train.plan import TargetPlan
from clinprompt.train.workspace import is_main, wait

__all__ = [
    "DEV_SCORE_FILE",
    "cached",
    "dev_records",
    "judge_candidate",
    "load_best",
    "score_records",
]

DEV_SCORE_FILE = "dev_score.json"


def dev_records(units: Records) -> Records:
    """The records the target's dev units come from, in order, each once: a unit of a
    pair-given RE record is that record plus its pair and is answered, as test answers it, with
    the whole record (every pair, merged); any other unit is its record."""
    records: dict[str, dict[str, Any]] = {}
    for unit in units:
        record = {k: v for k, v in unit.items() if k != PAIR}
        key = str(record.get("id") or json.dumps(record, sort_keys=True, default=str))
        records.setdefault(key, record)
    return list(records.values())


def score_records(
    backbone: Backbone,
    artifact: Artifact,
    spec: DatasetSpec,
    pool: Records,
    records: Records,
    data: DataArgs,
) -> tuple[float, list[Answer]]:
    """``artifact``'s primary metric on ``records`` and its answers, answered as the test
    evaluation answers: ``data.max_input_tokens`` per input, the generation budget of the
    training ``pool`` (:func:`generation_budget`, capped at ``data.max_target_tokens`` + 1)."""
    budget = generation_budget(spec, pool, backbone.tokenizer, data.max_target_tokens + 1)
    with torch.no_grad():
        answers = answer_records(backbone, artifact, spec, records, data.max_input_tokens, budget)
    task = get_task_type(spec.task_type)
    preds = [a.parsed.prediction for a in answers]
    return float(task.score(records, preds, spec)[task.primary_metric(spec)]), answers


def load_best(objective: PromptObjective, run_dir: Path) -> None:
    """Load the weights ``run_dir``'s run saved at its best dev loss into ``objective``'s
    trainable parameters (names and shapes must match)."""
    load_weights(run_dir / "best.safetensors", objective.named_parameters())


def cached(judge: Callable[[Path], float]) -> Callable[[Path], float]:
    """``judge`` (a recipe's: rebuild the candidate, load its weights, :func:`judge_candidate`)
    that first reads the score a candidate already has in ``RUN_DIR/dev_score.json``: on a
    resumed search the judged candidates are neither rebuilt nor loaded nor answered again."""

    @functools.wraps(judge)
    def judged(run_dir: Path) -> float:
        saved = run_dir / DEV_SCORE_FILE
        if saved.exists():
            return float(read_json(saved)["score"])
        return judge(run_dir)

    return judged


def judge_candidate(
    backbone: Backbone,
    target: TargetPlan,
    args: ExperimentArgs,
    run_dir: Path,
    method: str,
    prompt: torch.Tensor | None,
) -> float:
    """The dev score (×1, the primary metric in [0, 1]) of one search candidate, answered now
    and saved to ``run_dir/dev_score.json`` (which :func:`cached` reads back on a resume).

    Args:
        backbone: the backbone, conditioned as the candidate left it: with its LoRA layers
            injected and loaded (LoRA), else untouched.
        target: the target (its dev records, spec and training pool for the generation budget).
        args: the run's config (``data.max_input_tokens``, ``data.max_target_tokens``).
        run_dir: the candidate's run directory (the score is cached there).
        method: the method's name, recorded beside the score.
        prompt: the candidate's (P, D) task prompt; None for LoRA.

    Returns:
        The primary metric on ``target``'s dev records (:func:`dev_records`; 0.0 when the target
        has none).
    """
    started = time.perf_counter()
    spec, records = target.task.spec, dev_records(target.task.dev)
    score, answers = 0.0, []
    if records:
        artifact = Artifact(
            kind="prompt-file" if prompt is not None else "backbone",
            method=method,
            path=str(run_dir),
            prompt=None if prompt is None else prompt.detach().float().cpu(),
        )
        score, answers = score_records(
            backbone, artifact, spec, target.task.train, records, args.data
        )
    record: dict[str, Any] = {
        "method": method,
        "target": target.name,
        "split": "dev",
        "metric": get_task_type(spec.task_type).primary_metric(spec),
        "score": score,
        "n": len(records),
        "unparseable": sum(not a.parsed.ok for a in answers),
        "seconds": round(time.perf_counter() - started, 2),
        "answers": [
            {"id": r.get("id"), "raw": a.text} for r, a in zip(records, answers, strict=True)
        ],
    }
    if is_main():
        write_json(run_dir / DEV_SCORE_FILE, record)
    wait()
    return score
