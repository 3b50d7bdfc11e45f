"""The one training loop, shared by teachers, distillation, adaptation and both baselines.

AdamW with linear warm-up and decay (optionally several parameter groups, each with its own
peak rate on the same schedule: :class:`LrGroup`); ``batch_size`` examples per optimizer step,
split into ``grad_accum`` micro-batches and across data-parallel processes (``accelerate
launch``); every micro-batch's loss is a mean over its target tokens and is weighted by its share
of the step's target tokens, so accumulation and data parallelism give the update of one large
batch.
Dev loss every ``eval_every`` steps keeps the best weights; early stopping; a checkpoint that
resumes bit-exactly; a JSONL metrics log; a progress bar; a non-finite loss stops the run.

Output directory::

    OUT/checkpoint/     the latest checkpoint (see clinprompt.train.checkpoint)
    OUT/best.safetensors  the best weights on dev
    OUT/final.safetensors the weights the run ends with (the best when dev was evaluated)
    OUT/metrics.jsonl   one line per logged step and per evaluation
    OUT/result.json     written last: the run is finished

A run can also be paused (``pause_at``): it stops after that many steps of its schedule with a dev
evaluation and a checkpoint, and writes no result; a later call without ``pause_at`` resumes it to
the end, as if it had never stopped except for that one extra dev evaluation (the learning-rate
search judges candidates this way and continues only the winner).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from clinprompt.artifacts import atomic_write_text, read_json, write_json
from clinprompt.config import TrainArgs
from clinprompt.data.collate import Encoded
from clinprompt.precision import choice_of
from clinprompt.train.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights
from clinprompt.train.objectives import Objective
from clinprompt.train.sampling import BatchPlan
from clinprompt.train.step import accumulate_gradients, clip_gradients, evaluate_loss
from clinprompt.train.workspace import process_state

__all__ = ["LrGroup", "NonFiniteLossError", "TrainResult", "lr_at", "train"]


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient became NaN/inf; the last good checkpoint is left in place."""


@dataclass
class TrainResult:
    """What a training run did and where its weights are."""

    out_dir: Path
    steps: int
    final_loss: float | None
    best_metric: float | None
    best_step: int | None
    stopped_early: bool
    tokens: int  # real (non-pad, non-prompt) input + target tokens trained on
    wall_s: float
    losses: list[float] = field(default_factory=list)  # per step, this session only
    # The backbone's compute dtype and why (DtypeChoice.to_dict()); the trained weights are fp32.
    precision: dict[str, Any] | None = None

    @property
    def weights(self) -> Path:
        return self.out_dir / "final.safetensors"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out_dir": str(self.out_dir), "losses": self.losses[-50:]}


@dataclass(frozen=True)
class LrGroup:
    """Parameters trained at their own peak rate, on the run's warm-up/decay schedule.

    A parameter belongs to the group when its name (from ``Objective.named_parameters``) equals
    one of ``prefixes`` or starts with ``prefix + "."``; parameters in no group train at
    ``train.lr``. The metrics log writes each group's rate as ``lr_<name>``.
    """

    name: str  # e.g. shared, factors
    prefixes: tuple[str, ...]  # e.g. ("prompt.shared",)
    lr: float  # the peak rate

    def holds(self, param_name: str) -> bool:
        return any(param_name == p or param_name.startswith(p + ".") for p in self.prefixes)


def lr_at(step: int, args: TrainArgs, peak: float | None = None) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then linear decay.

    ``peak`` is the rate at the end of warm-up (default ``args.lr``): every parameter group
    follows the same schedule, scaled to its own peak.
    """
    peak = args.lr if peak is None else peak
    warm = args.warmup_steps
    if step < warm:
        return peak * (step + 1) / warm
    span = max(args.steps - warm, 1)
    return peak * (1.0 - (1.0 - args.min_lr_ratio) * (step - warm) / span)


def _param_groups(
    params: dict[str, torch.nn.Parameter], groups: Sequence[LrGroup], default_lr: float
) -> list[dict[str, Any]]:
    """AdamW parameter groups in ``groups`` order, then the rest at ``default_lr``; empty
    groups (e.g. a frozen P*) are left out.

    Raises:
        ValueError: a parameter that two groups claim.
    """
    out: list[dict[str, Any]] = []
    claimed: dict[str, str] = {}
    for group in groups:
        names = [n for n in params if group.holds(n)]
        twice = [n for n in names if n in claimed]
        if twice:
            raise ValueError(
                f"parameters {twice} are in learning-rate groups {claimed[twice[0]]!r} and {group.name!r}"
            )
        claimed.update(dict.fromkeys(names, group.name))
        if names:
            out.append({"params": [params[n] for n in names], "lr": group.lr, "name": group.name})
    rest = [p for n, p in params.items() if n not in claimed]
    if rest:
        out.append({"params": rest, "lr": default_lr, "name": "default"})
    return out


def _cap_per_task(examples: list[Encoded], cap: int) -> list[Encoded]:
    seen: dict[int, int] = {}
    out = []
    for x in examples:
        if seen.get(x.task_id, 0) < cap:
            seen[x.task_id] = seen.get(x.task_id, 0) + 1
            out.append(x)
    return out


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class _Log:
    """metrics.jsonl, written by the main process; on resume, lines after the checkpoint are dropped."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        kept = ""
        if resume_step is not None and path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            kept = "".join(
                line + "\n"
                for line in lines
                if line and json.loads(line).get("step", 0) <= resume_step
            )
        atomic_write_text(path, kept)

    def write(self, row: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


def train(
    objective: Objective,
    train_set: list[Encoded],
    args: TrainArgs,
    out_dir: str | Path,
    *,
    pad_id: int,
    dev_set: list[Encoded] | None = None,
    plan: BatchPlan | None = None,
    metric_fn: Callable[[int], float] | None = None,
    metric_mode: str = "min",
    on_step: Callable[[int, float], None] | None = None,
    resume: bool = True,
    desc: str = "train",
    lr_groups: Sequence[LrGroup] = (),
    pause_at: int | None = None,
) -> TrainResult:
    """Train ``objective``'s parameters on ``train_set``; see the module docstring.

    Args:
        objective: the loss and its trainable parameters.
        train_set: encoded examples (labels mask everything but the target).
        args: optimiser, schedule, batching, evaluation and checkpoint settings.
        out_dir: where checkpoints, logs and weights go.
        pad_id: the tokenizer's pad token id.
        dev_set: examples for the dev loss (``args.eval_examples`` per task id are used).
        plan: the batch plan (default: all examples, by length when ``args.bucket``).
        metric_fn: optional task metric at each evaluation, ``fn(step) -> value``; it then
            selects the best checkpoint instead of the dev loss.
        metric_mode: ``min`` or ``max`` for ``metric_fn``.
        on_step: called after every optimizer step with (step, loss).
        resume: continue from ``out_dir/checkpoint`` when it exists (a finished run returns its result).
        desc: the progress bar's label.
        lr_groups: parameters with their own peak rate (e.g. P* and the factors); empty: every
            parameter at ``args.lr``.
        pause_at: stop after this many steps (of ``args.steps``' schedule) with a dev
            evaluation and a checkpoint, and return without a ``result.json``: the returned
            result's ``best_metric`` is the best dev loss so far, and calling again without
            ``pause_at`` continues the run. None (or ``>= args.steps``): run to the end.

    Returns:
        A :class:`TrainResult`; the parameters hold the final (best on dev) weights, or, when
        paused, the weights of the pause.

    Raises:
        NonFiniteLossError: the loss or gradient norm became NaN/inf (names the step).
    """
    dist = process_state()
    main = dist.is_main_process
    out = Path(out_dir)
    params = objective.named_parameters()
    if not params:
        raise ValueError("the objective has no trainable parameters")
    if resume and (out / "result.json").exists():
        load_weights(out / "final.safetensors", params)
        done = read_json(out / "result.json")
        return TrainResult(**{**done, "out_dir": out, "losses": done.get("losses", [])})

    if lr_groups:
        # Each group's peak rate is kept beside its parameters ("peak") and saved with the
        # optimizer state, so a resumed run schedules every group as before.
        groups = _param_groups(params, lr_groups, args.lr)
        for g in groups:
            g["peak"] = g["lr"]
        optimizer = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.AdamW(
            list(params.values()), lr=args.lr, weight_decay=args.weight_decay
        )
    group_rates = {g["name"]: g["peak"] for g in optimizer.param_groups if "name" in g}
    lengths = [len(x) for x in train_set]
    plan = plan or BatchPlan(lengths, args.batch_size, args.seed, args.bucket, args.bucket_window)
    dev = _cap_per_task(dev_set, args.eval_examples) if dev_set else []
    ckpt = out / "checkpoint"
    pos: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "batch": 0,
        "best": None,
        "best_step": None,
        "bad_evals": 0,
        "tokens": 0,
    }
    if resume and (ckpt / "state.json").exists():
        saved_rates = read_json(ckpt / "state.json").get("lr_groups", {})
        if saved_rates != group_rates:
            raise ValueError(
                f"{ckpt} was written with learning-rate groups {saved_rates}; now {group_rates}: use a new output directory"
            )
        state = load_checkpoint(ckpt, params, optimizer)
        if state["plan"] != plan.signature():
            raise ValueError(
                f"{ckpt} was written for other data ({state['plan']}); now {plan.signature()}: use a new output directory"
            )
        pos = state["position"]
        log = _Log(out / "metrics.jsonl", main, pos["step"])
    else:
        _seed_everything(args.seed)
        if main:
            out.mkdir(parents=True, exist_ok=True)
        log = _Log(out / "metrics.jsonl", main, None)

    def checkpoint() -> None:
        if main:
            save_checkpoint(
                ckpt,
                params,
                optimizer,
                {
                    "position": pos,
                    "plan": plan.signature(),
                    "train_args": asdict(args),
                    "lr_groups": group_rates,
                },
            )
        dist.wait_for_everyone()

    def evaluate(step: int) -> bool:
        """Dev loss (+ metric); keep the best weights; True when early stopping triggers."""
        row: dict[str, Any] = {
            "step": step,
            "dev_loss": evaluate_loss(objective, dev, pad_id, args.eval_batch_size),
        }
        value, mode = row["dev_loss"], "min"
        if metric_fn is not None:
            value, mode = metric_fn(step), metric_mode
            row["dev_metric"] = value
        better = math.isfinite(value) and (
            pos["best"] is None or (value < pos["best"] if mode == "min" else value > pos["best"])
        )
        if better:
            pos.update(best=value, best_step=step, bad_evals=0)
            if main:
                save_weights(out / "best.safetensors", params)
        else:
            pos["bad_evals"] += 1
        log.write({**row, "best": bool(better)})
        return args.patience > 0 and pos["bad_evals"] >= args.patience

    if pause_at is not None and pause_at >= args.steps:
        pause_at = None
    if pause_at is not None and pos["step"] >= pause_at:  # paused before (or past the pause)
        return _result(out, pos, objective, [], 0.0)  # no result.json: not finished

    batches = plan.epoch(pos["epoch"])
    bar = tqdm(
        total=args.steps,
        initial=pos["step"],
        desc=desc,
        disable=not (args.progress and main),
        leave=False,
    )
    losses: list[float] = []
    stopped = False
    t0 = time.perf_counter()
    for step in range(pos["step"], args.steps):
        if pos["batch"] >= len(batches):
            pos.update(epoch=pos["epoch"] + 1, batch=0)
            batches = plan.epoch(pos["epoch"])
        ids = batches[pos["batch"]]
        pos["batch"] += 1
        lr = lr_at(step, args)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args, group["peak"]) if "peak" in group else lr

        names = ["loss", *objective.part_names]
        stats = accumulate_gradients(
            objective, train_set, ids, pad_id=pad_id, grad_accum=args.grad_accum
        )
        loss = float(stats[0])
        grad_norm = clip_gradients(params, args.max_grad_norm)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            bar.close()
            what = "loss" if not math.isfinite(loss) else "gradient norm"
            value = loss if not math.isfinite(loss) else grad_norm
            last = (
                f"the last good checkpoint is {ckpt} (step {read_json(ckpt / 'state.json')['position']['step']})"
                if (ckpt / "state.json").exists()
                else "no checkpoint was written yet"
            )
            raise NonFiniteLossError(
                f"{desc}: non-finite {what} ({value}) at step {step + 1} of {args.steps}; training stopped and "
                f"{last}. Lower train.lr or check the data of that step."
            )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        pos["step"] = step + 1
        pos["tokens"] += sum(lengths[i] for i in ids)
        losses.append(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        done = step + 1 == args.steps
        if args.log_every and ((step + 1) % args.log_every == 0 or done or step == 0):
            parts = {k: round(float(v), 6) for k, v in zip(names, stats.tolist(), strict=True)}
            log.write(
                {
                    "step": step + 1,
                    **parts,
                    "lr": lr,
                    **{f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups if "name" in g},
                    "grad_norm": grad_norm,
                    "tokens": pos["tokens"],
                    "epoch": pos["epoch"],
                    "elapsed_s": round(time.perf_counter() - t0, 3),
                }
            )
        evaluated = False
        pausing = pause_at is not None and step + 1 == pause_at
        if dev and ((args.eval_every and (step + 1) % args.eval_every == 0) or done or pausing):
            stopped, evaluated = evaluate(step + 1), True
        if evaluated or pausing or (args.save_every and (step + 1) % args.save_every == 0):
            checkpoint()
        if on_step is not None:
            on_step(step + 1, loss)
        if pausing and not stopped:
            bar.close()
            return _result(out, pos, objective, losses, time.perf_counter() - t0)
        if stopped:
            break
    bar.close()
    if pos["best_step"] is not None:
        load_weights(out / "best.safetensors", params)
    result = _result(out, pos, objective, losses, time.perf_counter() - t0, stopped)
    if main:
        save_weights(out / "final.safetensors", params)
        write_json(out / "result.json", result.to_dict())
    dist.wait_for_everyone()
    return result


def _result(
    out: Path,
    pos: dict[str, Any],
    objective: Objective,
    losses: list[float],
    wall_s: float,
    stopped: bool = False,
) -> TrainResult:
    """The run's result at its position ``pos``: finished, or paused (``train`` writes
    ``result.json`` only for a finished run)."""
    return TrainResult(
        out,
        pos["step"],
        losses[-1] if losses else None,
        pos["best"],
        pos["best_step"],
        stopped,
        pos["tokens"],
        wall_s,
        losses,
        choice_of(objective.model).to_dict(),
    )
