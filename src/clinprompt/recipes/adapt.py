"""Stage 3 — adaptation: P* and fresh factors fitted to each unseen target task.

``clinprompt adapt CONFIG [key=value ...]``

For every target, setting (``full`` data, ``k16``/``k64`` examples, ``k0`` zero-shot) and seed of
``adapt.seeds`` the target's prompt is ``P* ⊙ (u v)`` with u, v starting at the mean of the
source factors (or ones); training updates u, v and — with ``adapt.train_shared`` — its own copy
of P*, at one rate or two (``adapt.lr_shared`` for P*, ``adapt.lr_factors`` for u, v), chosen per
target by the learning-rate search on the dev split when ``adapt.lr_search`` asks for one
(:mod:`clinprompt.train.lr_search`; the same search as the baselines'). Zero-shot trains nothing:
P* with the mean source factors, or the factors of the closest source of the same task type.
Every result is added to the serving bank ``RUN/bank`` (which also holds the sources' factors):
``<target>`` for full data, ``<target>.<setting>`` otherwise, ``.s<seed>`` appended for seeds
other than 0; its meta records ``seed`` and ``train`` (chosen rates, search candidates, examples,
steps, epochs). Targets, settings, seeds, examples and budgets come from
:func:`clinprompt.train.plan.plan_targets`, as for the baselines.

``clinprompt adapt CONFIG --bank BANK --dataset my.yaml`` (:func:`adapt_bank`) adapts an existing
bank to one new target without teachers or distillation: the same per-target function
(:func:`adapt_target`) trains it from BANK's P* and source factors, and adds it to BANK (or to a
copy, ``--out NEWBANK``). Its run directory (default ``runs/<dataset name>``) is laid out as a
suite run's, so ``clinprompt evaluate --run-dir RUN --all`` and ``clinprompt report RUN`` read it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clinprompt.artifacts import atomic_dir, read_json, write_json
from clinprompt.backbone import Backbone
from clinprompt.config import ExperimentArgs, save_config
from clinprompt.data.spec import DatasetSpec
from clinprompt.data.suite import LeakageReport, check_target_leakage
from clinprompt.prompts import MultitaskPrompt
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.prompts.bank_location import refuse_builtin, resolve_bank
from clinprompt.recipes.target_run import record_artifacts, record_step, target_run
from clinprompt.train import PromptObjective, TrainResult, train
from clinprompt.train.data import instruction_of, suite_tasks
from clinprompt.train.lr_search import (
    LrChoice,
    Rates,
    apply_rates,
    choose_rates,
    reuse_search_run,
    training_record,
)
from clinprompt.train.plan import SettingPlan, TargetPlan, plan_target, plan_targets
from clinprompt.train.workspace import ArtifactRef, RunLayout, is_main, load_run_backbone, wait

__all__ = [
    "AdaptError",
    "AdaptResult",
    "BankAdaptResult",
    "adapt",
    "adapt_bank",
    "adapt_target",
    "source_tasks",
]


class AdaptError(ValueError):
    """Adaptation refused before any compute."""


@dataclass
class AdaptResult:
    """The serving bank and one reference per (target, setting)."""

    bank: Path
    artifacts: list[ArtifactRef] = field(default_factory=list)


def adapt(args: ExperimentArgs, backbone: Backbone | None = None) -> AdaptResult:
    """Adapt the distilled prompt to every target and setting; add each to ``RUN/bank``."""
    # ---- setup: refuse, then the distilled bank and the serving bank
    layout = RunLayout(args.run_dir)
    _, sources, targets = suite_tasks(args.data)
    if set(sources) & set(targets):
        raise AdaptError(f"{sorted(set(sources) & set(targets))} are both source and target tasks")
    if not (layout.distill_bank / "bank.json").exists():
        raise AdaptError(
            f"no distilled bank at {layout.distill_bank}; run `clinprompt distill` with the same config first"
        )
    backbone = backbone or load_run_backbone(args.backbone)
    distilled = PromptBank.load(layout.distill_bank, expect=backbone.fingerprint)
    source_prompt = distilled.multitask_prompt(sources)  # P* (P, D), U (K, P, R), V (K, R, D)
    if is_main():
        save_config(args, layout.root / "adapt" / "config.json")
        if not (layout.bank / "bank.json").exists():
            bank = PromptBank.create(
                layout.bank,
                backbone.fingerprint,
                distilled.prompt_tokens,
                distilled.rank,
                shared=distilled.shared(),
            )
            for name in sources:
                bank.add_from(distilled, name)
    wait()
    bank = PromptBank.load(layout.bank, expect=backbone.fingerprint)
    result = AdaptResult(layout.bank)
    for target in plan_targets(args, backbone):
        result.artifacts += adapt_target(
            target, bank, source_prompt, sources, args, backbone, layout
        )
    wait()
    layout.mark_done(
        "adapt", {"bank": str(layout.bank), "artifacts": [r.to_dict() for r in result.artifacts]}
    )
    return result


def adapt_target(
    target: TargetPlan,
    bank: PromptBank,
    source_prompt: MultitaskPrompt,
    sources: list[str],
    args: ExperimentArgs,
    backbone: Backbone,
    layout: RunLayout,
) -> list[ArtifactRef]:
    """Adapt P* to one target under each of its settings and seeds; add each to ``bank``.

    The suite's stage and :func:`adapt_bank` both adapt a target here. A setting whose task is
    already in ``bank`` is kept as it is (a re-run resumes). Loop output goes to
    ``RUN/adapt/runs/<target>/<setting>[.s<seed>]``, the learning-rate search to
    ``RUN/lr_search/mpt/<target>``.

    Args:
        target: the target's plan (:func:`clinprompt.train.plan.plan_target`).
        bank: where the target's tasks are added (it holds P*, the one ``source_prompt`` has).
        source_prompt: P* (P, D) and the sources' factors U (K, P, R), V (K, R, D).
        sources: the bank's names of the K sources (``target.zero_shot_source`` is one of them).
        args: the run's config (``adapt.*`` and its budgets).
        backbone: the loaded backbone.
        layout: the run directory.

    Returns:
        One reference per setting and seed, in training order.
    """
    tokenizer, model, a = backbone.tokenizer, backbone.model, args.adapt
    rank = source_prompt.cols.shape[-1]
    u0, v0 = (
        (source_prompt.cols.mean(0), source_prompt.rows.mean(0))
        if a.factor_init == "mean"
        else (None, None)
    )

    def fit(
        rates: Rates, setting: SettingPlan, run_dir: Path
    ) -> tuple[TrainResult, MultitaskPrompt]:
        """Train a fresh target prompt for ``setting`` at ``rates`` (the search's and every seed's)."""
        prompt = (
            _target_prompt(source_prompt.shared, u0, v0, rank)
            .trainable(shared=a.train_shared)
            .to(backbone.device)
        )
        targs, groups = apply_rates(setting.train, rates)
        result = train(
            PromptObjective(model, prompt),
            target.encode(setting.records),
            targs,
            run_dir,
            pad_id=tokenizer.pad_token_id,
            dev_set=target.dev_set,
            desc=f"adapt {setting.task}",
            lr_groups=groups,
        )
        return result, prompt

    spec = target.task.spec
    refs: list[ArtifactRef] = []
    choice: LrChoice | None = None  # searched once per target, when a setting trains
    for setting in target.settings:
        if setting.task in bank.tasks:
            meta = bank.entry(setting.task).meta or {}
            refs.append(_ref(bank.path, target.name, setting, meta.get("train", {})))
            continue
        entry = TaskEntry(
            name=setting.task,
            task_type=spec.task_type,
            kind="factors",
            labels=list(spec.labels),
            instruction=instruction_of(spec),
            dataset=target.name,
            meta={**setting.entry_meta("mpt"), "seed": setting.seed},
            spec=spec.task_spec(),
        )

        # ---- zero-shot: no training
        if setting.zero_shot:
            u, v, how = _zero_shot(source_prompt, sources, target.zero_shot_source)
            entry.meta.update(zero_shot=how, train=training_record(None, setting))
            if is_main():
                bank.add_factors(entry, u, v)
            refs.append(_ref(bank.path, target.name, setting, entry.meta["train"]))
            continue

        # ---- train u, v (and P*) from the chosen start, at the target's chosen rates
        if choice is None:
            choice = choose_rates("mpt", target, args, layout, lambda r, s, d: fit(r, s, d)[0])
        run_dir = layout.adapt_run(target.name, setting.name, setting.seed)
        reuse_search_run(choice, target, setting, run_dir)
        run, prompt = fit(choice.rates, setting, run_dir)
        entry.meta.update(
            best_dev_loss=run.best_metric,
            steps=run.steps,
            train=training_record(choice, setting, run.steps),
        )
        if is_main():
            shared = prompt.shared.detach().cpu() if a.train_shared else None
            bank.add_factors(
                entry,
                prompt.cols[0].detach().cpu(),
                prompt.rows[0].detach().cpu(),
                shared=shared,
            )
        refs.append(_ref(bank.path, target.name, setting, entry.meta["train"]))
    return refs


# ------------------------------------------------------------- one new target from a bank
@dataclass
class BankAdaptResult:
    """What :func:`adapt_bank` did: where the target went and how it was trained."""

    bank: Path  # the bank the target's tasks are in (BANK, or the copy --out made)
    source_bank: Path  # the bank adapted from
    run_dir: Path
    dataset: DatasetSpec
    artifacts: list[ArtifactRef] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # tasks already in the bank, left as they were
    sources: list[str] = field(default_factory=list)  # the bank's source tasks
    leakage: LeakageReport | None = None
    data: dict[str, Any] = field(default_factory=dict)  # examples per split, where dev came from
    wall_s: float = 0.0

    def entries(self) -> list[TaskEntry]:
        """The target's entries in :attr:`bank`, in training order."""
        bank = PromptBank.load(self.bank)
        return [bank.entry(r.task) for r in self.artifacts if r.task is not None]


def source_tasks(bank: PromptBank) -> list[str]:
    """The bank's source tasks: factors on its shared P* that are no adapted target (their meta
    names no setting), as distillation wrote them."""
    return [
        name
        for name, e in bank.tasks.items()
        if e.kind == "factors" and not e.own_shared and "setting" not in (e.meta or {})
    ]


def adapt_bank(
    args: ExperimentArgs,
    bank: str | Path,
    dataset: str | Path,
    out: str | Path | None = None,
    run_dir: str | Path | None = None,
    backbone: Backbone | None = None,
    say: Callable[[str], None] | None = None,
    command: str | None = None,
) -> BankAdaptResult:
    """Adapt ``bank``'s P* and source factors to one new target, as the suite's stage does.

    Everything that can be refused is refused before the backbone loads: the dataset config
    (``config.yaml:LINE: ...``), the bank (not a bank, no source factors, the target among its
    sources), the destination (the shipped bank needs ``out``), the run directory (made with
    another config or from another bank). Then the backbone loads and the bank's fingerprint is
    checked against it, and the target is checked for leakage against the bank's sources
    available here (:func:`clinprompt.data.suite.check_target_leakage`: overlaps, or which
    sources were skipped and why). Then the target is planned (full data, ``adapt.shots``,
    zero-shot from the closest source of the same type, ``adapt.seeds``, the dev search of
    ``adapt.lr_search``) and trained by :func:`adapt_target`.

    Args:
        args: the profile and overrides (budgets, ``adapt.*``, ``data.*`` limits, backbone).
        bank: the bank to adapt (a directory, or ``builtin``).
        dataset: the target: a dataset config path (JSONL or BRAT) or a registered name.
        out: write into this new bank (a copy of ``bank``, made atomically) and leave ``bank``
            untouched; default: add the target to ``bank`` itself.
        run_dir: the run directory (default ``runs/<dataset name>``): config, loop output,
            learning-rate search, ``artifacts.json``, later the evaluations and the report.
        backbone: an already loaded backbone (default: the profile's).
        say: called with a line for each finding before training (leakage, data, plan).
        command: the command line to record in ``RUN/provenance.json``.

    Raises:
        AdaptError, BankError, ConfigError, RecordError (a ValueError with file:line),
        UnknownDatasetError: refused before any compute.
    """
    started = time.perf_counter()
    say = say or (lambda line: None)
    # ---- refuse what can be refused without a model
    run = target_run(args, dataset, run_dir)  # the config first: its problems as file:line
    spec, args, layout, target = run.spec, run.args, run.layout, run.target
    source_path = resolve_bank(bank)
    source = PromptBank.load(source_path)
    dest = Path(out).expanduser() if out is not None else source_path
    refuse_builtin(dest, "adapt into")
    sources = source_tasks(source)
    if not sources:
        raise AdaptError(
            f"the bank {source_path} has no source factors on a shared P* to adapt from "
            "(a distilled bank, RUN/distill/bank, or a serving bank, RUN/bank, has them)"
        )
    datasets = {name: source.entry(name).dataset or name for name in sources}
    if spec.name in datasets.values() or spec.name in sources:
        raise AdaptError(
            f"{spec.name!r} is one of the bank's source tasks: it was seen in distillation; "
            "adapt the bank to a task it was not trained on"
        )
    _check_same_source(layout, source_path, source)

    # ---- the backbone: the bank's fingerprint, then the leakage check
    backbone = backbone or load_run_backbone(args.backbone)
    source.check_backbone(backbone.fingerprint)
    if is_main():
        save_config(args, layout.config)
        _record_source(layout, source_path, source)
    leakage = check_target_leakage(
        spec, list(dict.fromkeys(datasets.values())), args.data.data_root
    )
    if is_main():
        write_json(layout.root / "adapt" / "leakage.json", leakage.to_dict())
    for line in _leakage_lines(leakage):
        say(line)

    # ---- the destination bank: BANK itself, or its copy
    if out is not None and dest.resolve() != source_path.resolve():
        _copy_bank(source, dest)
    target_bank = PromptBank.load(dest, expect=backbone.fingerprint)
    if not torch.equal(target_bank.shared(), source.shared()):
        raise AdaptError(f"{dest} holds another P* than {source_path}; choose a new --out")

    # ---- plan and train
    plan = plan_target(
        args,
        backbone,
        target,
        sources=lambda: [dataclasses.replace(source.entry(n).spec, name=n) for n in sources],
    )
    if args.prompt.tokens != source.prompt_tokens:
        say(
            f"note: the bank's prompts have P={source.prompt_tokens} tokens (prompt.tokens is "
            f"{args.prompt.tokens}); MPT uses the bank's P, the PT baseline prompt.tokens"
        )
    data = _data_summary(plan, spec, args)
    say(data["note"])
    kept = [s.task for s in plan.settings if s.task in target_bank.tasks]
    source_prompt = target_bank.multitask_prompt(sources)  # P* (P, D), U (K, P, R), V (K, R, D)
    refs = adapt_target(plan, target_bank, source_prompt, sources, args, backbone, layout)
    wait()

    # ---- record the run's artifacts (evaluate --all reads them) and the step's provenance
    if is_main():
        record_artifacts(layout.root, refs)
        record_step(run, "adapt", time.perf_counter() - started, backbone, command)
    return BankAdaptResult(
        bank=dest,
        source_bank=source_path,
        run_dir=layout.root,
        dataset=spec,
        artifacts=refs,
        kept=kept,
        sources=sources,
        leakage=leakage,
        data=data,
        wall_s=time.perf_counter() - started,
    )


def _shared_digest(bank: PromptBank) -> str:
    """A digest of the bank's P* (fp32 bytes): which bank a run was adapted from."""
    return hashlib.sha256(bank.shared().float().contiguous().numpy().tobytes()).hexdigest()


def _source_record(layout: RunLayout) -> Path:
    return layout.root / "adapt" / "source_bank.json"


def _check_same_source(layout: RunLayout, path: Path, bank: PromptBank) -> None:
    """Refuse a run directory adapted from another bank: its loop output would be reused."""
    record = _source_record(layout)
    if record.exists():
        old = read_json(record)
        if old.get("shared_sha256") != _shared_digest(bank):
            raise AdaptError(
                f"the run directory {layout.root} was adapted from the bank {old.get('bank')} "
                f"(another P*); choose another --run-dir for {path}"
            )


def _record_source(layout: RunLayout, path: Path, bank: PromptBank) -> None:
    """Which bank the run adapts from (its P*'s digest, its sources)."""
    write_json(
        _source_record(layout),
        {
            "bank": str(path.resolve()),
            "shared_sha256": _shared_digest(bank),
            "sources": source_tasks(bank),
        },
    )


def _copy_bank(source: PromptBank, dest: Path) -> None:
    """``dest`` as a copy of ``source`` (made atomically; an existing bank there is kept)."""
    if (dest / "bank.json").exists():
        return
    if dest.exists() and any(dest.iterdir()):
        raise AdaptError(f"--out {dest} exists and is not a bank; choose a new directory")
    if is_main():
        with atomic_dir(dest) as tmp:
            for name in ("bank.json", "shared.safetensors", "config.json", "provenance.json"):
                if (source.path / name).exists():
                    shutil.copy2(source.path / name, tmp / name)
            (tmp / "tasks").mkdir()
            for name in source.tasks:
                file = source.path / "tasks" / f"{name}.safetensors"
                shutil.copy2(file, tmp / "tasks" / file.name)
    wait()


def _leakage_lines(report: LeakageReport) -> list[str]:
    """What the leakage check of the target found, one line each."""
    checked = [t for t in report.checked if t != report.suite.removeprefix("target ")]
    lines = []
    if checked:
        verdict = "no overlap" if not report.overlaps else f"{len(report.overlaps)} overlap(s)"
        lines.append(f"leakage check against {len(checked)} source(s): {verdict}")
    lines += report.skipped_note().splitlines()
    lines += [f"leakage check: error loading {t}: {e}" for t, e in report.errors.items()]
    lines += [
        f"leakage: {n} target record(s) share text with {s} ({k})"
        for (_, s, k), n in sorted(report.summary().items())
    ]
    return lines


def _data_summary(plan: TargetPlan, spec: DatasetSpec, args: ExperimentArgs) -> dict[str, Any]:
    """Training examples, dev examples and where dev came from, with a one-line note."""
    task = plan.task
    carved = bool(task.dev) and task.pool_split == "train" and "dev" not in spec.splits
    dev_from = (
        f"carved from the {task.pool_split} split: a seeded {args.data.dev_fraction * 100:g}%"
        if carved
        else ("its dev split" if task.dev else "none: no dev loss, no learning-rate search")
    )
    settings = ", ".join(
        f"{s.label} ({len(s.records)} examples, {s.train.steps} steps)"
        if not s.zero_shot
        else f"{s.label} (zero-shot from {plan.zero_shot_source or 'the mean source factors'})"
        for s in plan.settings
    )
    return {
        "train_examples": len(task.train),
        "pool_split": task.pool_split,
        "dev_examples": len(task.dev),
        "dev_from": dev_from,
        "settings": [s.label for s in plan.settings],
        "zero_shot_source": plan.zero_shot_source,
        "note": (
            f"data: {len(task.train)} training examples ({task.pool_split} split); "
            f"dev: {len(task.dev)} examples, {dev_from}; settings: {settings}"
        ),
    }


def _ref(bank: Path, target: str, setting: SettingPlan, train: dict[str, Any]) -> ArtifactRef:
    """The bank's task of ``setting``, with how it was trained."""
    return ArtifactRef(
        "mpt", target, setting.name, str(bank), setting.task, setting.seed, dict(train)
    )


def _target_prompt(
    shared: torch.Tensor, u0: torch.Tensor | None, v0: torch.Tensor | None, rank: int
) -> MultitaskPrompt:
    """A one-task prompt on (a copy of) P*, with factors u0 (P, R), v0 (R, D) or ones."""
    if u0 is None or v0 is None:
        return MultitaskPrompt.create(shared.detach(), 1, rank, "ones")
    return MultitaskPrompt(shared.detach(), u0.detach().unsqueeze(0), v0.detach().unsqueeze(0))


def _zero_shot(
    source_prompt: MultitaskPrompt, sources: list[str], closest: str | None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Factors u (P, R), v (R, D) of a zero-shot target: the sources' mean, or the closest's."""
    if closest is None:
        return (
            source_prompt.cols.mean(0).detach(),
            source_prompt.rows.mean(0).detach(),
            "mean of source factors",
        )
    k = sources.index(closest)
    return (
        source_prompt.cols[k].detach(),
        source_prompt.rows[k].detach(),
        f"factors of the closest source {closest}",
    )
