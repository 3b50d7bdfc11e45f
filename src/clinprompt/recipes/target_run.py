"""One user target: adapt an existing bank to it, train its baselines, in its own run directory.

``clinprompt adapt CONFIG --bank BANK --dataset my.yaml`` (:func:`adapt_bank`) adapts BANK's P*
and source factors to one new target without teachers or distillation: it plans the target as the
suite's stage does (:func:`clinprompt.train.plan.plan_target`) and trains it with the same
per-target function (:func:`clinprompt.recipes.adapt.adapt_target`), adding it to BANK or to a
copy (``--out NEWBANK``). ``clinprompt baseline CONFIG --dataset my.yaml``
(:func:`train_baselines_on`) trains PT and LoRA on the same plan
(:func:`clinprompt.recipes.baseline.baseline_target`).

The run directory (``--run-dir``, default ``runs/<dataset name>``) is laid out as a suite run's
(:class:`~clinprompt.train.workspace.RunLayout`); its ``config.json`` is the profile with
``data.targets`` naming the target (a dataset config's absolute path, or a registered name), so
MPT and both baselines plan the same records and budgets, and a later command with another
config is refused (as ``clinprompt run`` refuses one). Beside the suite layout it holds
``adapt/source_bank.json`` (the bank it was adapted from: another bank is refused),
``adapt/leakage.json`` (the target's leakage check against the bank's sources) and
``provenance.json`` (commands, backbone, budgets, hardware, times: under the report's tables).

Artifacts: a suite run records them in ``RUN/run.json`` and each stage's ``RUN/<stage>/DONE.json``;
the one-target commands merge theirs into ``RUN/artifacts.json``, one entry per (method, target,
setting, seed). :func:`recorded_artifacts` reads all three, so ``clinprompt evaluate --run-dir RUN
--all`` works on either kind of run.
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
from clinprompt.data.registry import is_config_path, resolve_dataset
from clinprompt.data.spec import DatasetSpec
from clinprompt.data.suite import LeakageReport, check_target_leakage
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.prompts.bank_location import refuse_builtin, resolve_bank
from clinprompt.recipes.adapt import AdaptError, adapt_target, source_tasks
from clinprompt.recipes.baseline import BaselineResult, baseline_target, open_pt_bank
from clinprompt.train.data import suite_tasks
from clinprompt.train.plan import TargetPlan, plan_target
from clinprompt.train.workspace import ArtifactRef, RunLayout, is_main, load_run_backbone, wait

__all__ = [
    "ARTIFACTS_FILE",
    "BankAdaptResult",
    "TargetRun",
    "adapt_bank",
    "record_artifacts",
    "record_step",
    "recorded_artifacts",
    "target_run",
    "train_baselines_on",
]

ARTIFACTS_FILE = "artifacts.json"


@dataclass(frozen=True)
class TargetRun:
    """One user target's run: its dataset, the run's config, and where it writes."""

    spec: DatasetSpec
    args: ExperimentArgs  # output_dir: the run directory; data.targets: [target]
    target: str  # a dataset config's absolute path, or a registered name

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.args.run_dir)


def target_run(
    args: ExperimentArgs, dataset: str | Path, run_dir: str | Path | None = None
) -> TargetRun:
    """Resolve ``dataset`` and set up its run directory; nothing is written.

    Args:
        args: the profile and overrides.
        dataset: a dataset config path (JSONL or BRAT) or a registered name.
        run_dir: the run directory (default ``runs/<dataset name>``).

    Raises:
        RecordError: the config's problems as ``config.yaml:LINE: ...``; UnknownDatasetError: no
            such name or file; ValueError: a registered name the profile's suite cannot take as a
            target; ConfigError: the run directory holds a run made with another config.
    """
    spec = resolve_dataset(dataset)  # a name, or a config checked whole (file:line)
    target = str(Path(dataset).expanduser().resolve()) if is_config_path(dataset) else spec.name
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / spec.name
    args = dataclasses.replace(
        args,
        output_dir=str(run_dir),
        data=dataclasses.replace(args.data, targets=[target]),
    )
    suite_tasks(args.data)  # the target must be one the run's later commands can read back
    RunLayout(args.run_dir).check_config(args)
    return TargetRun(spec, args, target)


def _key(ref: ArtifactRef) -> tuple[str, str, str, int]:
    return (ref.method, ref.target, ref.setting, ref.seed)


def _merge(refs: list[ArtifactRef]) -> list[ArtifactRef]:
    """One reference per (method, target, setting, seed): a later one replaces an earlier one,
    in the earlier one's place."""
    merged: dict[tuple[str, str, str, int], ArtifactRef] = {}
    for ref in refs:
        merged[_key(ref)] = ref
    return list(merged.values())


def record_artifacts(run_dir: str | Path, refs: list[ArtifactRef]) -> Path:
    """Merge ``refs`` into ``RUN/artifacts.json`` (atomically); return its path."""
    path = Path(run_dir) / ARTIFACTS_FILE
    old = [ArtifactRef(**r) for r in read_json(path)["artifacts"]] if path.exists() else []
    write_json(path, {"artifacts": [r.to_dict() for r in _merge([*old, *refs])]})
    return path


def recorded_artifacts(run_dir: str | Path) -> list[ArtifactRef]:
    """Every artifact ``run_dir`` records: ``run.json``, the stages' ``DONE.json`` (adapt,
    baseline) and ``artifacts.json``, one per (method, target, setting, seed)."""
    layout = RunLayout(Path(run_dir))
    files = [
        layout.root / "run.json",
        layout.stage_dir("adapt") / "DONE.json",
        layout.stage_dir("baseline") / "DONE.json",
        layout.root / ARTIFACTS_FILE,
    ]
    found: list[ArtifactRef] = []
    for path in files:
        if path.exists():
            found += [ArtifactRef(**r) for r in read_json(path).get("artifacts", [])]
    return _merge(found)


def record_step(
    run: TargetRun, stage: str, seconds: float, backbone: Any, command: str | None = None
) -> None:
    """Add one command's work to ``RUN/provenance.json`` (shown under the report's tables):
    the stage's time, the backbone, the budgets, the hardware, and the command line, appended
    to those run before in this directory."""
    from clinprompt.eval.provenance import (
        backbone_description,
        budgets,
        hardware,
        record_provenance,
    )

    path = run.layout.root / "provenance.json"
    commands = list(read_json(path).get("commands", [])) if path.exists() else []
    if command and command not in commands:
        commands.append(command)
    fields: dict[str, Any] = {
        "target": run.spec.name,
        "backbone": backbone_description(backbone),
        # this run trains no teachers and distils nothing: those budgets are the bank's
        "budgets": {
            k: v
            for k, v in budgets(run.args).items()
            if not k.startswith(("teachers_", "distill_"))
        },
        "hardware": hardware(),
        "stages": {stage: {"seconds": round(seconds, 1), "status": "ran"}},
    }
    if commands:
        fields.update(commands=commands, command=" ; ".join(commands))
    record_provenance(run.layout.root, **fields)


# ------------------------------------------------------------- adapt a bank to one target
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
    spec = resolve_dataset(dataset)  # the config first: its problems as file:line
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
    run = target_run(args, dataset, run_dir)
    args, layout, target = run.args, run.layout, run.target
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


# ------------------------------------------------------------- its baselines
def train_baselines_on(
    args: ExperimentArgs,
    dataset: str | Path,
    methods: list[str] | None = None,
    run_dir: str | Path | None = None,
    backbone: Backbone | None = None,
    command: str | None = None,
) -> BaselineResult:
    """The baselines on one user target, into its run directory (``runs/<dataset name>``).

    The plan is the one ``clinprompt adapt --bank`` makes for the same profile and overrides
    (same records, budgets, seeds and learning-rate search), so the three methods compare on
    equal terms; a run directory made with another config is refused before any compute. PT has
    no zero-shot row here: it transfers a teacher prompt, and this run has no teachers.

    Args:
        args: the profile and overrides.
        dataset: a dataset config path (JSONL or BRAT) or a registered name.
        methods: pt and/or lora (default ``baseline.methods``).
        run_dir: the run directory (default ``runs/<dataset name>``).
        backbone: an already loaded backbone (default: the profile's).
        command: the command line to record in ``RUN/provenance.json``.

    Raises:
        RecordError (file:line), UnknownDatasetError, ConfigError: refused before any compute.
    """
    started = time.perf_counter()
    run = target_run(args, dataset, run_dir)  # the config first: its problems as file:line
    args, layout = run.args, run.layout
    methods = methods or args.baseline.methods
    backbone = backbone or load_run_backbone(args.backbone)
    if is_main():
        save_config(args, layout.config)
    pt_bank = open_pt_bank(layout, args, backbone, methods)
    plan = plan_target(args, backbone, run.target)
    refs = baseline_target(plan, methods, args, backbone, layout, pt_bank, None)
    wait()
    if is_main():
        record_artifacts(layout.root, refs)
        record_step(run, "baseline", time.perf_counter() - started, backbone, command)
    notes = (
        ["pt k0 (zero-shot) not trained: it transfers a teacher prompt, and this run has none"]
        if "pt" in methods and any(s.zero_shot for s in plan.settings)
        else []
    )
    return BaselineResult(refs, layout.root, notes)
