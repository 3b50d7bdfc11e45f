"""Hand-made run directories for the report tests: evaluations (metrics.json + predictions.jsonl)
written the way ``clinprompt evaluate`` writes them, with or without training seeds, ``training``
records and the training loop's logs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from clinprompt.artifacts import write_json, write_jsonl
from clinprompt.tasks.spec import TaskSpec

BACKBONE = {"name": "toy-backbone"}
NER_SPEC = TaskSpec("toy_ner", "ner", labels=("Drug",))
TEXT = "aspirin and ibuprofen"
GOLD_ENTITIES = [{"start": 0, "end": 7, "type": "Drug"}, {"start": 12, "end": 21, "type": "Drug"}]


def eval_folder(run: Path, method: str, target: str, setting: str, seed: int | None) -> Path:
    """``RUN/eval/<method>/<target>/<setting>[.s<seed>]`` (seed 0 or None: no suffix)."""
    name = setting if not seed else f"{setting}.s{seed}"
    return Path(run) / "eval" / method / target / name


def put_scores(
    run: Path,
    method: str,
    target: str,
    setting: str,
    task_type: str,
    metrics: dict[str, float],
    primary: str,
    scores: list[float],
    *,
    trainable: int | None = None,
    unparseable: int = 0,
    seed: int | None = None,
    training: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """One evaluation of a mean-of-scores metric; ``seed`` None writes no ``train_seed`` (old run)."""
    folder = eval_folder(run, method, target, setting, seed)
    data: dict[str, Any] = {
        "method": method,
        "target": target,
        "setting": setting,
        "task_type": task_type,
        "primary_metric": primary,
        "metrics": metrics,
        "n": len(scores),
        "unparseable": unparseable,
        "trainable_params": trainable,
        "backbone_params": 1000 if trainable is not None else None,
        "backbone": BACKBONE,
        "decomposable": True,
    }
    if seed is not None:
        data["train_seed"] = seed
    if training is not None:
        data["training"] = training
    data.update(extra or {})
    write_json(folder / "metrics.json", data)
    write_jsonl(
        folder / "predictions.jsonl",
        [{"id": f"e{i}", "score": s, "ok": True} for i, s in enumerate(scores)],
    )
    return folder


def put_ner(
    run: Path,
    method: str,
    setting: str,
    found: list[int],
    *,
    trainable: int | None = None,
    seed: int | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """An NER evaluation (corpus micro F1): example i's prediction finds ``found[i]`` of its two
    entities; strict F1 is computed by the task type, as ``clinprompt evaluate`` does."""
    from clinprompt.tasks.base import get_task_type

    golds = [{"id": f"d{i}", "text": TEXT, "entities": GOLD_ENTITIES} for i in range(len(found))]
    preds = [{**g, "entities": GOLD_ENTITIES[:k]} for g, k in zip(golds, found, strict=True)]
    f1 = get_task_type("ner").score(golds, preds, NER_SPEC)["strict_f1"]
    folder = eval_folder(run, method, "toy_ner", setting, seed)
    data: dict[str, Any] = {
        "method": method,
        "target": "toy_ner",
        "setting": setting,
        "task_type": "ner",
        "primary_metric": "strict_f1",
        "metrics": {"strict_f1": f1},
        "n": len(found),
        "unparseable": 0,
        "trainable_params": trainable,
        "backbone_params": 1000 if trainable is not None else None,
        "backbone": BACKBONE,
        "decomposable": False,
        "spec": NER_SPEC.to_dict(),
    }
    if seed is not None:
        data["train_seed"] = seed
    if training is not None:
        data["training"] = training
    write_json(folder / "metrics.json", data)
    write_jsonl(
        folder / "predictions.jsonl",
        [
            {"id": g["id"], "gold": g, "prediction": p, "ok": True, "score": 0.0}
            for g, p in zip(golds, preds, strict=True)
        ],
    )
    return folder


# Per-example scores of the old-run fixture (fixed numbers, so the golden outputs are stable).
NLI = {
    "floor": [1, 0, 1, 0, 1, 0, 1, 0, 1, 0],
    "zeroshot": [0, 1, 0, 1, 0, 0, 1, 0, 0, 1],
    "pt": [1, 1, 0, 1, 0, 1, 1, 0, 0, 1],
    "lora": [1, 1, 1, 0, 0, 1, 0, 1, 1, 0],
    "mpt": [1, 1, 1, 1, 0, 1, 1, 0, 1, 1],
}
SUM = {
    "floor": [0.1, 0.2, 0.15, 0.05, 0.3, 0.1, 0.2],
    "pt": [0.3, 0.25, 0.4, 0.1, 0.35, 0.2, 0.3],
    "lora": [0.35, 0.3, 0.2, 0.3, 0.4, 0.25, 0.1],
    "mpt": [0.4, 0.3, 0.45, 0.2, 0.3, 0.35, 0.3],
}
NER = {
    "floor": [0, 0, 0, 0, 0, 0, 0, 0],
    "zeroshot": [0, 1, 0, 0, 0, 0, 1, 0],
    "pt": [1, 2, 0, 1, 1, 0, 2, 1],
    "lora": [0, 1, 1, 0, 2, 0, 1, 0],
    "mpt": [2, 2, 1, 1, 2, 0, 2, 1],
}
TRAINABLE = {"zeroshot": 0, "pt": 10, "lora": 40, "mpt": 12}


def _nli_metrics(scores: list[int]) -> dict[str, float]:
    acc = sum(scores) / len(scores)
    return {"macro_f1": round(acc - 0.1, 4), "accuracy": acc}


def build_old_run(run: Path) -> Path:
    """A run written before seeds and ``training`` records: three targets (NER with a corpus
    metric, NLI, SUM), the five main columns, and k = 0 / 16 rows for PT and MPT on NLI."""
    for method, found in NER.items():
        setting = "k0" if method == "zeroshot" else "full"
        put_ner(run, method, setting, found, trainable=TRAINABLE.get(method))
    for method, scores in NLI.items():
        setting = "k0" if method == "zeroshot" else "full"
        put_scores(
            run,
            method,
            "toy_nli",
            setting,
            "nli",
            _nli_metrics(scores),
            "macro_f1",
            scores,
            trainable=TRAINABLE.get(method),
            unparseable=1 if method == "lora" else 0,
        )
    for method, scores in SUM.items():
        put_scores(
            run,
            method,
            "toy_sum",
            "full",
            "sum",
            {"rougeL": sum(scores) / len(scores)},
            "rougeL",
            scores,
            trainable=TRAINABLE.get(method),
        )
    for method in ("pt", "mpt"):
        for setting, shift in (("k0", 3), ("k16", 1)):
            scores = NLI[method][shift:] + NLI[method][:shift]
            scores = [s * (1 if i % 3 else 0) for i, s in enumerate(scores)]
            put_scores(
                run,
                method,
                "toy_nli",
                setting,
                "nli",
                _nli_metrics(scores),
                "macro_f1",
                scores,
                trainable=TRAINABLE[method],
            )
    write_json(
        run / "provenance.json",
        {"command": "clinprompt demo", "hardware": "2 CPU cores", "wall_time": "1s"},
    )
    return run


def write_log(path: Path, rows: list[dict[str, Any]], tail: str = "") -> Path:
    """A training loop's ``metrics.jsonl`` (``tail`` is appended raw: a partial last line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")
    return path


def loss_rows(
    steps: int, start: float, end: float, parts: tuple[str, ...] = ("lm",), dev_every: int = 5
) -> list[dict[str, Any]]:
    """Train rows (loss and its parts, decaying from ``start`` towards ``end`` with a little
    step-to-step noise) and dev rows every ``dev_every`` steps."""
    rows: list[dict[str, Any]] = []
    for step in range(1, steps + 1):
        smooth = end + (start - end) * math.exp(-4 * (step - 1) / max(steps - 1, 1))
        loss = smooth + 0.06 * math.sin(1.7 * step)
        row: dict[str, Any] = {"step": step, "loss": loss, "lr": 0.3, "epoch": 0}
        for i, name in enumerate(parts):
            row[name] = loss / (i + 1)
        rows.append(row)
        if step % dev_every == 0:
            rows.append({"step": step, "dev_loss": smooth + 0.2, "best": True})
    return rows


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    return build_old_run(tmp_path / "run")


# ------------------------------------------------------------------ a run with seeds and training
SEEDS = (0, 1, 2)
# method → seed → per-example scores on toy_nli (10 examples); seeds disagree on purpose.
SEEDED_NLI = {
    "pt": {
        0: [1, 1, 0, 1, 0, 1, 1, 0, 0, 1],
        1: [1, 0, 0, 1, 0, 1, 0, 0, 0, 1],
        2: [1, 1, 1, 1, 0, 1, 1, 0, 1, 1],
    },
    "lora": {
        0: [1, 1, 1, 0, 0, 1, 0, 1, 1, 0],
        1: [1, 1, 1, 0, 0, 1, 0, 1, 1, 0],
        2: [1, 0, 1, 0, 0, 1, 0, 1, 1, 0],
    },
    "mpt": {
        0: [1, 1, 1, 1, 0, 1, 1, 0, 1, 1],
        1: [1, 1, 1, 1, 1, 1, 1, 0, 1, 1],
        2: [0, 1, 1, 1, 0, 1, 1, 0, 1, 0],
    },
}
SEEDED_NER = {
    "pt": {0: [1, 2, 0, 1, 1, 0, 2, 1], 1: [0, 2, 0, 1, 0, 0, 2, 1], 2: [1, 2, 1, 1, 1, 0, 2, 2]},
    "lora": {0: [0, 1, 1, 0, 2, 0, 1, 0], 1: [0, 1, 1, 0, 2, 0, 1, 0], 2: [0, 1, 1, 0, 2, 0, 1, 0]},
    "mpt": {0: [2, 2, 1, 1, 2, 0, 2, 1], 1: [2, 2, 2, 1, 2, 1, 2, 1], 2: [2, 1, 1, 1, 2, 0, 2, 1]},
}
CHOSEN = {
    "pt": ({"lr": 0.3}, {"0.03": 1.42, "0.1": 1.21, "0.3": 0.94}),
    "lora": ({"lr": 0.001}, {"0.0003": 1.5, "0.001": 1.31, "0.003": 1.33}),
    "mpt": (
        {"lr_shared": 0.3, "lr_factors": 0.03},
        {"0.3/0.03": 0.88, "0.3/0.3": 0.97, "0.1/0.03": 0.91},
    ),
}


def training_record(method: str, setting: str, seed: int) -> dict[str, Any]:
    """The ``training`` record of one trained evaluation (k16: 16 examples for 10 epochs)."""
    chosen, candidates = CHOSEN[method]
    if method == "pt" and setting == "k16" and seed == 2:
        chosen = {"lr": 0.1}  # one run chose differently: the table must say where
    examples, steps = (16, 40) if setting == "k16" else (300, 100)
    return {
        "chosen_lr": chosen,
        "lr_candidates": candidates,
        "train_examples": examples,
        "train_steps": steps,
        "epochs": steps * 4 / examples,
    }


def build_seeded_run(run: Path) -> Path:
    """Three training seeds of PT, LoRA and MPT on NLI and NER (full; and k16 on NLI), with
    ``train_seed`` and ``training`` recorded; floor and zero-shot once."""
    for method, found in (("floor", NER["floor"]), ("zeroshot", NER["zeroshot"])):
        put_ner(
            run,
            method,
            "k0" if method == "zeroshot" else "full",
            found,
            trainable=TRAINABLE.get(method),
        )
    for method, scores in (("floor", NLI["floor"]), ("zeroshot", NLI["zeroshot"])):
        setting = "k0" if method == "zeroshot" else "full"
        put_scores(
            run,
            method,
            "toy_nli",
            setting,
            "nli",
            _nli_metrics(scores),
            "macro_f1",
            scores,
            trainable=TRAINABLE.get(method),
        )
    for method in ("pt", "lora", "mpt"):
        for seed in SEEDS:
            scores = SEEDED_NLI[method][seed]
            put_scores(
                run,
                method,
                "toy_nli",
                "full",
                "nli",
                _nli_metrics(scores),
                "macro_f1",
                scores,
                trainable=TRAINABLE[method],
                seed=seed,
                training=training_record(method, "full", seed),
            )
            put_ner(
                run,
                method,
                "full",
                SEEDED_NER[method][seed],
                trainable=TRAINABLE[method],
                seed=seed,
                training=training_record(method, "full", seed),
            )
            if method != "lora":
                k16 = [s * (i % 2) for i, s in enumerate(scores)]
                put_scores(
                    run,
                    method,
                    "toy_nli",
                    "k16",
                    "nli",
                    _nli_metrics(k16),
                    "macro_f1",
                    k16,
                    trainable=TRAINABLE[method],
                    seed=seed,
                    training=training_record(method, "k16", seed),
                )
    return run


def write_training_logs(run: Path, missing: tuple[str, str, str, int] | None = None) -> None:
    """Fake loop logs for every stage of ``build_seeded_run``'s run: three teachers (one log
    ending in a partial line), distillation with lm/kl/mse, and each trained evaluation's run;
    ``missing`` = (method, target, setting, seed) gets a run folder without a log."""
    from clinprompt.train.workspace import RunLayout

    layout = RunLayout(run)
    for i, source in enumerate(("src_ner", "src_nli", "src_qa")):
        write_log(
            layout.teacher_run(source) / "metrics.jsonl",
            loss_rows(20, 3.0 - 0.3 * i, 1.0),
            tail='{"step": 21, "loss": 0.9' if source == "src_nli" else "",
        )
    write_log(layout.distill_run / "metrics.jsonl", loss_rows(30, 4.0, 1.5, ("lm", "kl", "mse")))
    where = {"mpt": layout.adapt_run, "pt": layout.pt_run, "lora": layout.lora_run}
    for method in ("pt", "lora", "mpt"):
        for target in ("toy_ner", "toy_nli"):
            for setting in ("full", "k16"):
                if (
                    method == "lora"
                    and setting == "k16"
                    or target == "toy_ner"
                    and setting == "k16"
                ):
                    continue
                for seed in SEEDS:
                    folder = where[method](target, setting, seed)
                    if missing == (method, target, setting, seed):
                        folder.mkdir(parents=True, exist_ok=True)
                        continue
                    steps = 40 if setting == "k16" else 100
                    write_log(
                        folder / "metrics.jsonl",
                        loss_rows(steps, 2.5 + 0.2 * seed, 0.8 + 0.1 * seed, dev_every=10),
                    )
    (layout.stage_dir("adapt")).mkdir(parents=True, exist_ok=True)
    (layout.stage_dir("baseline")).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def build():
    """The builders of this file, for tests (a conftest is not importable under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        old=build_old_run,
        seeded=build_seeded_run,
        logs=write_training_logs,
        put_scores=put_scores,
        put_ner=put_ner,
        loss_rows=loss_rows,
        write_log=write_log,
    )
