"""A method's learning rates, and the small search on the target's dev split that picks them.

Rates are ``{"lr": x}`` (one peak rate for every trained parameter) or ``{"lr_shared": a,
"lr_factors": b}`` (MPT: P* and the factors u, v, each with its own peak on the same warm-up and
decay schedule; :func:`apply_rates` turns them into the loop's :class:`LrGroup` s).

Base rates (:func:`base_rates`): MPT adaptation ``adapt.lr_shared``/``adapt.lr_factors`` (None:
adapt's ``train.lr``; both None: one rate), PT ``baseline.pt_lr`` (None: adapt's ``train.lr``),
LoRA ``baseline.lora_lr``.

The search (:func:`choose_rates`), the same for every method: each multiplier m of
``adapt.lr_search`` scales the method's base rate(s) (MPT's two together) and trains the method
on the target's full training pool at seed 0 with ``adapt.train``'s budget, with the loop's own
dev evaluation. ``adapt.lr_search_judge`` says what ranks the candidates: ``loss``, the lowest
best dev loss wins (ties: the smaller rate); ``score``, the highest dev score wins: the task's
primary metric of the candidate's weights at its best dev loss on the target's dev records,
answered as the test evaluation answers (a :data:`Judge` the recipe layer supplies; ties: the
lower dev loss, then the smaller rate). A candidate whose loss diverges loses either way. When
the winner is the smallest or largest multiplier tried, the optimum may lie outside the grid:
``adapt.lr_search_extend`` more candidates are then tried, one grid step past that edge at a
time (the edge's ratio to its neighbour: [0.3, 1, 3] goes on to 0.09 or 9), until the edge no
longer wins (by the same judge). The chosen rates then serve every seed and every setting (full
and k-shot) of that method on that target. The chosen candidate's run is the
seed-0 full run (:func:`reuse_search_run` copies it there instead of training it again).

With ``adapt.lr_search_steps`` = s (below the budget), every candidate runs the full budget's
schedule but is paused after s steps and judged by its best dev loss so far; only the winner's run
goes on to the end. A search of K candidates then costs K·s + (steps − s) steps instead of
K·steps. The price: rates are judged at step s, where a higher rate that learns faster early can
beat one that would end lower; s should lie past the warm-up.

Results: ``RUN/lr_search/<method>/<target>/search.json`` (every candidate and the choice) and one
loop directory per candidate (``x<m>/``); a finished search is read back, never rerun, and an
interrupted candidate resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinprompt.artifacts import read_json, write_json
from clinprompt.config import LR_SEARCH_JUDGES, ExperimentArgs, TrainArgs
from clinprompt.train.loop import LrGroup, NonFiniteLossError, TrainResult
from clinprompt.train.objectives import FACTOR_PARAMS, SHARED_PARAMS
from clinprompt.train.plan import FULL, SettingPlan, TargetPlan
from clinprompt.train.workspace import RunLayout, is_main, wait

__all__ = [
    "LrChoice",
    "LrSearchError",
    "Judge",
    "Rates",
    "apply_rates",
    "base_rates",
    "choose_rates",
    "rate_label",
    "rates_of",
    "reuse_search_run",
    "searching",
    "training_record",
]

Rates = dict[str, float]  # {"lr": x} or {"lr_shared": a, "lr_factors": b}

# fit(rates, setting, run_dir, pause_at): train the method afresh for ``setting`` at ``rates`` into
# run_dir (resuming what run_dir holds), paused after ``pause_at`` steps when it is not None.
Fit = Callable[[Rates, SettingPlan, Path, int | None], TrainResult]
# judge(run_dir): the dev score (higher is better) of the weights a candidate's run saved at its
# best dev loss (run_dir/best.safetensors); cached by the judge in the run directory.
Judge = Callable[[Path], float]


class LrSearchError(RuntimeError):
    """No candidate of a learning-rate search produced a dev loss."""


def rates_of(lr_shared: float | None, lr_factors: float | None, lr: float) -> Rates:
    """MPT's rates: one rate ``lr`` when neither is set, else both (an unset one is ``lr``)."""
    if lr_shared is None and lr_factors is None:
        return {"lr": lr}
    return {
        "lr_shared": lr if lr_shared is None else lr_shared,
        "lr_factors": lr if lr_factors is None else lr_factors,
    }


def base_rates(args: ExperimentArgs, method: str) -> Rates:
    """The rates ``method`` (mpt, pt, lora) trains a target with before any search."""
    lr = args.stage_train(args.adapt.train).lr
    if method == "mpt":
        return rates_of(args.adapt.lr_shared, args.adapt.lr_factors, lr)
    if method == "pt":
        return {"lr": lr if args.baseline.pt_lr is None else args.baseline.pt_lr}
    if method == "lora":
        return {"lr": args.baseline.lora_lr}
    raise ValueError(f"unknown method {method!r}; expected mpt, pt or lora")


def apply_rates(train: TrainArgs, rates: Rates) -> tuple[TrainArgs, list[LrGroup]]:
    """The loop's arguments for ``rates``: ``train`` with ``lr`` replaced (one rate), or
    ``train`` with a group for P* and one for the factors (two rates)."""
    if "lr" in rates:
        return dataclasses.replace(train, lr=rates["lr"]), []
    return train, [
        LrGroup("shared", SHARED_PARAMS, rates["lr_shared"]),
        LrGroup("factors", FACTOR_PARAMS, rates["lr_factors"]),
    ]


def searching(multipliers: list[float]) -> bool:
    """Whether ``adapt.lr_search`` asks for a search ([] and [1.0] do not)."""
    return sorted(set(multipliers)) not in ([], [1.0])


@dataclass(frozen=True)
class LrChoice:
    """The rates a method trains a target with, and how they were chosen."""

    rates: Rates
    candidates: list[dict[str, Any]] = field(default_factory=list)  # [] without a search
    run_dir: str | None = None  # the chosen candidate's run
    judged_at: int | None = None  # the step candidates were judged at (None: the budget's end)
    judged_by: str = "loss"  # what ranked them (adapt.lr_search_judge)

    def record(self) -> dict[str, Any]:
        """``chosen_lr`` (the rates) and ``lr_candidates`` (each candidate's rates, as
        :func:`rate_label` writes them → its best dev loss, None when it diverged; {} without a
        search); when candidates were paused early, ``lr_judged_at`` (that step); when they were
        ranked by dev score, ``lr_judged_by`` (``score``) and ``lr_candidate_scores`` (rates →
        dev score), as bank entries, sidecars and ArtifactRefs hold them."""
        record: dict[str, Any] = {
            "chosen_lr": dict(self.rates),
            "lr_candidates": {rate_label(c["lr"]): c["best_dev_loss"] for c in self.candidates},
        }
        if self.judged_at is not None:
            record["lr_judged_at"] = self.judged_at
        if self.judged_by != "loss":
            record["lr_judged_by"] = self.judged_by
            record["lr_candidate_scores"] = {
                rate_label(c["lr"]): c.get("dev_score") for c in self.candidates
            }
        return record

    def to_dict(self) -> dict[str, Any]:
        return {
            "rates": self.rates,
            "candidates": self.candidates,
            "run_dir": self.run_dir,
            "judged_at": self.judged_at,
            "judged_by": self.judged_by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LrChoice:
        return cls(
            dict(data["rates"]),
            list(data["candidates"]),
            data.get("run_dir"),
            data.get("judged_at"),
            data.get("judged_by", "loss"),
        )


def rate_label(rates: Rates) -> str:
    """``{"lr": 0.3}`` → ``0.3``; ``{"lr_shared": 0.3, "lr_factors": 0.03}`` → ``0.3/0.03``."""
    if "lr" in rates:
        return f"{rates['lr']:g}"
    return f"{rates['lr_shared']:g}/{rates['lr_factors']:g}"


def _scaled(rates: Rates, multiplier: float) -> Rates:
    return {k: v * multiplier for k, v in rates.items()}


def _best(ranked: list[dict[str, Any]], judged_by: str = "loss") -> dict[str, Any]:
    """The winner among candidates with a dev loss: by ``loss``, the lowest best dev loss (ties:
    the smaller multiplier); by ``score``, the highest dev score (ties: the lower dev loss, then
    the smaller multiplier)."""
    if judged_by == "score":
        return min(ranked, key=lambda c: (-c["dev_score"], c["best_dev_loss"], c["multiplier"]))
    return min(ranked, key=lambda c: (c["best_dev_loss"], c["multiplier"]))


def _beyond_edge(candidates: list[dict[str, Any]], judged_by: str = "loss") -> float | None:
    """The next multiplier past the grid's edge when the best candidate with a dev loss sits on
    that edge (one grid step further: the edge's ratio to its neighbour), else None; None also
    when fewer than two candidates were tried or none has a dev loss. So when every rate above the
    smallest diverged, the search goes on below it."""
    ranked = [c for c in candidates if c["best_dev_loss"] is not None]
    tried = sorted(c["multiplier"] for c in candidates)
    if len(tried) < 2 or not ranked:
        return None
    best = _best(ranked, judged_by)["multiplier"]
    if best == tried[0]:
        return tried[0] * tried[0] / tried[1]
    if best == tried[-1]:
        return tried[-1] * tried[-1] / tried[-2]
    return None


def choose_rates(
    method: str,
    target: TargetPlan,
    args: ExperimentArgs,
    layout: RunLayout,
    fit: Fit,
    judge: Judge | None = None,
) -> LrChoice:
    """The rates of ``method`` on ``target``: its base rates, or the winner of the dev search.

    Args:
        method: mpt, pt or lora (its base rates: :func:`base_rates`).
        target: the target's plan; ``target.lr_search`` is the candidates' setting.
        args: the run's config (``adapt.lr_search``, ``adapt.lr_search_steps``).
        layout: the run directory (``RUN/lr_search/<method>/<target>``).
        fit: trains the method afresh at given rates (paused at ``adapt.lr_search_steps``);
            the loop's best dev loss ranks it when ``adapt.lr_search_judge`` is ``loss``.
        judge: scores a trained candidate on dev (``adapt.lr_search_judge`` ``score``); called
            right after that candidate's ``fit``, for every candidate with a finite dev loss.

    Raises:
        LrSearchError: every candidate diverged or had no dev loss.
        ValueError: ``adapt.lr_search_judge`` is ``score`` and no ``judge`` was given.
    """
    base = base_rates(args, method)
    if not searching(args.adapt.lr_search) or target.lr_search is None:
        return LrChoice(base)
    judged_by = args.adapt.lr_search_judge
    if judged_by not in LR_SEARCH_JUDGES:
        raise ValueError(f"adapt.lr_search_judge={judged_by!r}; expected one of {LR_SEARCH_JUDGES}")
    if judged_by == "score" and judge is None:
        raise ValueError(
            f"adapt.lr_search_judge=score: the {method} recipe gave the search no dev-score judge"
        )
    out = layout.lr_search(method, target.name)
    if (out / "search.json").exists():
        return LrChoice.from_dict(read_json(out / "search.json"))
    candidates: list[dict[str, Any]] = []
    budget = target.lr_search.train.steps
    judged_at = args.lr_search_judged_at

    def try_multiplier(m: float) -> None:
        rates, run_dir = _scaled(base, m), out / f"x{m:g}"
        try:
            result = fit(rates, target.lr_search, run_dir, judged_at)
            loss, steps = result.best_metric, result.steps
        except NonFiniteLossError:  # too high a rate: this candidate loses
            loss, steps = None, None
        if loss is not None and not math.isfinite(loss):
            loss = None
        candidate = {
            "multiplier": m,
            "lr": rates,
            "best_dev_loss": loss,
            "steps": steps,
            "run": str(run_dir),
        }
        if judged_by == "score":
            assert judge is not None
            candidate["dev_score"] = None if loss is None else float(judge(run_dir))
        candidates.append(candidate)

    for m in sorted(set(args.adapt.lr_search)):
        try_multiplier(m)
    for _ in range(args.adapt.lr_search_extend):
        beyond = _beyond_edge(candidates, judged_by)
        if beyond is None:
            break
        try_multiplier(beyond)
    candidates.sort(key=lambda c: c["multiplier"])
    ranked = [c for c in candidates if c["best_dev_loss"] is not None]
    if not ranked:
        raise LrSearchError(
            f"learning-rate search of {method} on {target.name}: no candidate has a dev loss "
            f"(every one diverged, or the target has no dev examples); candidates {candidates}"
        )
    best = _best(ranked, judged_by)
    choice = LrChoice(dict(best["lr"]), candidates, best["run"], judged_at, judged_by)
    if is_main():
        write_json(
            out / "search.json",
            {
                "method": method,
                "target": target.name,
                "base": base,
                "steps": budget,
                **choice.to_dict(),
            },
        )
    wait()
    return choice


def reuse_search_run(
    choice: LrChoice, target: TargetPlan, setting: SettingPlan, run_dir: Path
) -> bool:
    """Copy the chosen candidate's run into ``run_dir`` when it is this setting's run.

    That is the case for the seed-0 ``full`` setting, whose plan the search's runs share: the
    loop then finds the run in ``run_dir`` and loads its weights (a finished candidate) or
    continues it from the step it was judged at (``adapt.lr_search_steps``) instead of training
    again. A ``run_dir`` that already holds a result or a checkpoint (an interrupted
    continuation) is left as it is. Returns whether ``run_dir`` holds that run.
    """
    same = (
        choice.run_dir is not None
        and target.lr_search is not None
        and setting.name == FULL
        and setting.seed == 0
        and setting.train == target.lr_search.train
    )
    if not same:
        return False
    started = (run_dir / "result.json").exists() or (run_dir / "checkpoint" / "state.json").exists()
    if not started:
        if is_main():  # copied whole, then renamed: never a half-copied checkpoint
            staging = run_dir.with_name(run_dir.name + ".copying")
            for stale in (staging, run_dir):
                if stale.exists():
                    shutil.rmtree(stale)
            shutil.copytree(Path(str(choice.run_dir)), staging)
            staging.rename(run_dir)
        wait()
    return True


def training_record(
    choice: LrChoice | None, setting: SettingPlan, steps: int | None = None
) -> dict[str, Any]:
    """How an artifact was trained (the ``train`` of bank meta, sidecars and ArtifactRefs):
    ``chosen_lr`` and ``lr_candidates`` (:meth:`LrChoice.record`; absent when nothing was
    trained: ``choice`` None, zero-shot), ``train_examples``, ``train_steps`` (the steps run)
    and ``epochs``."""
    chosen = choice.record() if choice is not None else {}
    return {**chosen, **setting.training(steps)}
