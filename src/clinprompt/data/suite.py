"""Suites (which datasets are sources, which are held-out targets) and the leakage check.

A suite is a small YAML file::

    name: open-clinical
    description: one line
    sources: [bc5cdr_ner, chemprot, ...]     # multitask source training (teachers, distillation)
    targets: [e3c_en_clinical_ner, ...]      # held out: never seen in source training
    caps: {aci_bench: 200}                    # optional: at most N training examples from a task

A source or target may be the path of a dataset config (``my_notes.yaml``, relative to the suite
file's folder): it is loaded and registered by :func:`clinprompt.data.registry.resolve_dataset`
and the suite holds its name. Built-in suites ship inside the package
(``clinprompt/suites/*.yaml``): ``open-clinical`` and ``synthetic``. :func:`check_leakage`
verifies that no target text occurs in any source split; :func:`check_target_leakage` checks one
target against whichever of a list of sources are available here.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clinprompt.data.registry import (
    DataRootError,
    UnknownDatasetError,
    get_dataset,
    is_config_path,
    list_datasets,
    load_splits,
    needs_data_root,
    resolve_data_root,
    resolve_dataset,
)
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.tasks.records import RecordError

__all__ = [
    "TEXT_FIELDS",
    "LeakageReport",
    "Overlap",
    "Suite",
    "SuiteError",
    "check_leakage",
    "check_target_leakage",
    "list_suites",
    "load_suite",
    "normalize_text",
    "parse_suite",
]

TEXT_FIELDS = ("text", "question", "context", "premise", "hypothesis", "source", "summary")
_KEYS = ("name", "description", "sources", "targets", "caps")


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and every bad field."""


@dataclass(frozen=True)
class Suite:
    """Source and target datasets of one benchmark.

    Attributes:
        name: the suite's name (``open-clinical``).
        sources: registry names of the source tasks (multitask training).
        targets: registry names of the held-out target tasks; disjoint from ``sources``.
        description: one line for listings.
        caps: task → the most training examples drawn from it (a run's own budget applies on top).
        path: the YAML file it came from, if any.
    """

    name: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    description: str = ""
    caps: dict[str, int] = field(default_factory=dict)
    path: Path | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        """Sources then targets."""
        return self.sources + self.targets

    def role(self, task: str) -> str:
        """``source`` or ``target``; KeyError for a task outside the suite."""
        if task in self.sources:
            return "source"
        if task in self.targets:
            return "target"
        raise KeyError(f"{task!r} is not in suite {self.name!r}")

    def cap(self, task: str) -> int | None:
        """The suite's cap on training examples from ``task`` (None: no cap)."""
        return self.caps.get(task)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able form (the file's keys)."""
        out = {
            "name": self.name,
            "description": self.description,
            "sources": list(self.sources),
            "targets": list(self.targets),
        }
        if self.caps:
            out["caps"] = dict(self.caps)
        return out


def _builtin_dir() -> Any:
    return resources.files("clinprompt") / "suites"


def list_suites() -> list[str]:
    """Names of the built-in suites."""
    return sorted(
        p.name[: -len(".yaml")] for p in _builtin_dir().iterdir() if p.name.endswith(".yaml")
    )


def load_suite(name_or_path: str | Path, check_names: bool = True) -> Suite:
    """Load a suite from a built-in name (``open-clinical``, ``synthetic``) or a YAML path.

    Args:
        name_or_path: a built-in suite name, or the path of a suite YAML file.
        check_names: check every task name against the dataset registry.

    Raises:
        SuiteError: the name or file is unknown, or the file is invalid (every problem listed,
            with the file and field).
    """
    text = str(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_file():
        origin, raw = str(path), path.read_text(encoding="utf-8")
    elif path.suffix in (".yaml", ".yml") or "/" in text:
        raise SuiteError(f"suite file {path} does not exist")
    else:
        builtins = list_suites()
        if text not in builtins:
            close = difflib.get_close_matches(text, builtins, n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise SuiteError(
                f"unknown suite {text!r}.{hint} Built-in suites: {', '.join(builtins)}; or pass a YAML file path"
            )
        resource = _builtin_dir() / f"{text}.yaml"
        origin, raw = f"built-in suite {text} ({resource})", resource.read_text(encoding="utf-8")
        path = Path(str(resource))
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise SuiteError(f"{origin}: not valid YAML: {e}") from e
    return parse_suite(data, origin=origin, path=path, check_names=check_names)


def _config_name(entry: str, field_name: str, base: Path, problems: list[str]) -> str | None:
    """The registered name of the dataset config ``entry`` (a path relative to ``base``); None,
    with its problems added, when it does not resolve."""
    try:
        return resolve_dataset(entry, base).name
    except RecordError as e:  # each problem of the config as file:line: field ...
        problems.extend(f"field '{field_name}': {issue}" for issue in e.issues)
    except UnknownDatasetError as e:
        problems.append(f"field '{field_name}': {e}")
    return None


def _task_list(data: dict[str, Any], key: str, problems: list[str], base: Path) -> tuple[str, ...]:
    value = data.get(key)
    if value is None or value == []:
        problems.append(f"field '{key}': must be a non-empty list of dataset names")
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f"field '{key}': expected a list of dataset names, got {value!r}")
        return ()
    names: list[str] = []
    for i, entry in enumerate(value):
        name = (
            _config_name(entry, f"{key}[{i}]", base, problems) if is_config_path(entry) else entry
        )
        if name is not None:
            names.append(name)
    for name, count in Counter(names).items():
        if count > 1:
            problems.append(f"field '{key}': {name!r} is listed {count} times")
    return tuple(dict.fromkeys(names))


def parse_suite(
    data: Any, origin: str = "<suite>", path: Path | None = None, check_names: bool = True
) -> Suite:
    """Validate a suite mapping (a parsed YAML file) and build the :class:`Suite`.

    Dataset config paths among the sources, targets and caps are resolved relative to the folder
    of ``path`` (else the working directory) and replaced by the names they register.

    Raises:
        SuiteError: listing every problem at once, prefixed with ``origin`` (a dataset config's
            own problems as ``config.yaml:LINE: field 'x': ...``).
    """
    if not isinstance(data, dict):
        raise SuiteError(
            f"{origin}: expected a mapping with keys {', '.join(_KEYS)}, got {type(data).__name__}"
        )
    problems: list[str] = []
    for key in data:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"field '{key}': unknown key{hint}; expected {', '.join(_KEYS)}")
    name = data.get("name") or (path.stem if path else "")
    if not isinstance(name, str) or not name:
        problems.append("field 'name': must be a non-empty string")
    description = data.get("description") or ""
    if not isinstance(description, str):
        problems.append(f"field 'description': expected a string, got {description!r}")
    base = path.parent if path is not None else Path(".")
    sources = _task_list(data, "sources", problems, base)
    targets = _task_list(data, "targets", problems, base)
    for task in targets:
        if task in sources:
            problems.append(
                f"field 'targets': {task!r} is also a source; a target must never be seen in source training"
            )
    if check_names:
        known = [s.name for s in list_datasets()]
        for key, tasks in (("sources", sources), ("targets", targets)):
            for i, task in enumerate(tasks):
                if task not in known:
                    close = difflib.get_close_matches(task, known, n=3)
                    hint = (
                        f" (did you mean {', '.join(close)}?)"
                        if close
                        else " (no registered dataset is close)"
                    )
                    problems.append(f"field '{key}[{i}]': unknown dataset {task!r}{hint}")
    caps = data.get("caps") or {}
    if not isinstance(caps, dict):
        problems.append(f"field 'caps': expected a mapping task → number of examples, got {caps!r}")
        caps = {}
    caps = {
        (
            _config_name(task, f"caps.{task}", base, problems) or task
            if isinstance(task, str) and is_config_path(task)
            else task
        ): cap
        for task, cap in caps.items()
    }
    for task, cap in caps.items():
        if task not in sources and task not in targets:
            problems.append(
                f"field 'caps.{task}': {task!r} is neither a source nor a target of this suite"
            )
        if isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0:
            problems.append(f"field 'caps.{task}': expected a positive integer, got {cap!r}")
    if problems:
        raise SuiteError(f"{origin}: invalid suite:\n" + "\n".join(f"  - {p}" for p in problems))
    return Suite(
        name=name,
        sources=sources,
        targets=targets,
        description=description.strip(),
        caps=dict(caps),
        path=path,
    )


# ---------------------------------------------------------------- leakage
_NON_WORD = re.compile(r"[\W_]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def normalize_text(text: str) -> str:
    """Lowercase, punctuation → space, whitespace collapsed.

    Dropping punctuation as well as case and spacing makes tokenized text (CoNLL ``"drug ."``)
    compare equal to the raw sentence it came from.
    """
    return _NON_WORD.sub(" ", text.lower()).strip()


def _fields(record: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for name in TEXT_FIELDS:
        value = record.get(name)
        if isinstance(value, str) and value:
            yield name, value


def _sentences(text: str, min_chars: int) -> Iterator[str]:
    for piece in _SENTENCE_END.split(text):
        norm = normalize_text(piece)
        if len(norm) >= min_chars:
            yield norm


@dataclass(frozen=True)
class Overlap:
    """A target record whose text occurs in a source record.

    ``kind`` is ``exact`` (a whole normalised field is equal) or ``sentence`` (a sentence of at
    least ``min_sentence_chars`` occurs in a source field; ``sentences`` counts them).
    """

    target_task: str
    target_split: str
    target_id: str
    target_field: str
    source_task: str
    source_split: str
    source_id: str
    source_field: str
    kind: str
    text: str
    sentences: int = 1


@dataclass
class LeakageReport:
    """What :func:`check_leakage` found: overlaps, per-task record counts and load errors.

    ``skipped`` (from :func:`check_target_leakage`) maps each source that could not be checked
    here to why; those sources were not compared, which :attr:`clean` does not vouch for.
    """

    suite: str
    overlaps: list[Overlap] = field(default_factory=list)
    records: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """No overlap found and every task that was checked loaded (skipped sources aside)."""
        return not self.overlaps and not self.errors

    @property
    def checked(self) -> tuple[str, ...]:
        """The tasks whose records were compared (those that loaded)."""
        return tuple(self.records)

    def skipped_note(self) -> str:
        """One line per reason naming the sources skipped for it; empty when none was."""
        by_reason: dict[str, list[str]] = {}
        for task, reason in self.skipped.items():
            by_reason.setdefault(reason, []).append(task)
        return "\n".join(
            f"leakage check skipped for {', '.join(tasks)}: {reason}"
            for reason, tasks in by_reason.items()
        )

    def summary(self) -> dict[tuple[str, str, str], int]:
        """(target task, source task, kind) → number of target records that overlap."""
        return dict(Counter((o.target_task, o.source_task, o.kind) for o in self.overlaps))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "suite": self.suite,
            "clean": self.clean,
            "records": self.records,
            "errors": self.errors,
            "skipped": self.skipped,
            "summary": [
                {"target": t, "source": s, "kind": k, "count": n}
                for (t, s, k), n in sorted(self.summary().items())
            ],
            "overlaps": [asdict(o) for o in self.overlaps],
        }

    def __str__(self) -> str:
        lines = [f"leakage check of suite {self.suite}: {'clean' if self.clean else 'NOT clean'}"]
        lines += [f"  {line}" for line in self.skipped_note().splitlines()]
        lines += [f"  error loading {t}: {e}" for t, e in self.errors.items()]
        lines += [
            f"  {t} <- {s} ({k}): {n} target records"
            for (t, s, k), n in sorted(self.summary().items())
        ]
        return "\n".join(lines)


def check_leakage(
    suite: Suite,
    data_root: str | Path | None = None,
    *,
    min_chars: int = 20,
    min_sentence_chars: int = 50,
    loader: Callable[[str], dict[str, Records]] | None = None,
) -> LeakageReport:
    """Find target text that occurs in any split of any source task.

    Text fields (:data:`TEXT_FIELDS`) are normalised with :func:`normalize_text` and compared
    through hash sets: a whole target field equal to a whole source field (``exact``, fields of at
    least ``min_chars`` characters), or a target sentence of at least ``min_sentence_chars``
    characters equal to a sentence of a source field (``sentence``; this catches a target sentence
    embedded in a source passage). Every split of every task is checked, whatever the caps.

    Args:
        suite: the suite to check.
        data_root: where native files live (see :func:`clinprompt.data.registry.resolve_data_root`).
        min_chars: shorter whole fields ("yes", a drug name) are not evidence of leakage.
        min_sentence_chars: shortest sentence compared at the sentence level.
        loader: task name → splits; default :func:`clinprompt.data.registry.load_splits`.

    Returns:
        A :class:`LeakageReport`; a task that fails to load is recorded in ``errors``, not raised.
    """
    load = loader or (lambda task: load_splits(task, data_root))
    report = LeakageReport(suite=suite.name)
    # hash(normalised text) → (task, split, id, field) of its first source occurrence
    whole: dict[int, tuple[str, str, str, str]] = {}
    sentences: dict[int, tuple[str, str, str, str]] = {}
    splits_of: dict[str, dict[str, Records]] = {}
    for task in suite.tasks:
        try:
            splits_of[task] = load(task)
        except Exception as e:  # a broken loader is reported, and the check is not clean
            report.errors[task] = f"{type(e).__name__}: {e}"
            continue
        report.records[task] = {split: len(records) for split, records in splits_of[task].items()}
        if task not in suite.sources:
            continue
        for split, records in splits_of.pop(task).items():
            for record in records:
                where = (task, split, str(record.get("id")))
                for name, value in _fields(record):
                    whole.setdefault(hash(normalize_text(value)), (*where, name))
                    for sentence in _sentences(value, min_sentence_chars):
                        sentences.setdefault(hash(sentence), (*where, name))
    for task in suite.targets:
        for split, records in splits_of.get(task, {}).items():
            for record in records:
                report.overlaps.extend(
                    _record_overlaps(
                        task, split, record, whole, sentences, min_chars, min_sentence_chars
                    )
                )
    return report


def _record_overlaps(
    task: str,
    split: str,
    record: dict[str, Any],
    whole: dict[int, tuple[str, str, str, str]],
    sentences: dict[int, tuple[str, str, str, str]],
    min_chars: int,
    min_sentence_chars: int,
) -> Iterator[Overlap]:
    """The overlaps of one target record: at most one per text field (exact before sentence)."""
    for name, value in _fields(record):
        norm = normalize_text(value)
        target = (task, split, str(record.get("id")), name)
        if len(norm) >= min_chars and hash(norm) in whole:
            yield Overlap(*target, *whole[hash(norm)], kind="exact", text=norm[:160])
            continue
        hits = [
            (s, sentences[hash(s)])
            for s in _sentences(value, min_sentence_chars)
            if hash(s) in sentences
        ]
        if hits:
            yield Overlap(
                *target, *hits[0][1], kind="sentence", text=hits[0][0][:160], sentences=len(hits)
            )


def _unavailable(task: str, data_root: str | Path | None) -> str | None:
    """Why ``task``'s records cannot be read here (None: they can be)."""
    try:
        spec = get_dataset(task)
    except UnknownDatasetError:
        return "not a registered dataset here (a dataset config of another machine?)"
    if not needs_data_root(spec):
        return None
    try:
        root = resolve_data_root(data_root)
    except DataRootError as e:
        return f"their files are not here: {e}"
    folder = root / spec.subdir if spec.subdir else root
    if not folder.exists():
        return f"their files are not here: {folder.resolve()} is missing under the data root"
    return None


def check_target_leakage(
    target: DatasetSpec | str | Path,
    sources: Sequence[str],
    data_root: str | Path | None = None,
    *,
    min_chars: int = 20,
    min_sentence_chars: int = 50,
    loader: Callable[[str], dict[str, Records]] | None = None,
) -> LeakageReport:
    """Check one target (e.g. a user's dataset) against the sources available here.

    The sources are those a bank was distilled from. Each one whose records can be read here
    (generated data, user configs, built-in datasets whose folder is under the data root) is
    compared with the target as :func:`check_leakage` does; every other one is listed in
    ``skipped`` with the reason, so the caller can say the check was skipped rather than clean.

    Args:
        target: the target's spec, registered name or dataset config path.
        sources: source dataset names (a bank's ``sources``).
        data_root: where native files live (see :func:`clinprompt.data.registry.resolve_data_root`).
        min_chars, min_sentence_chars: as in :func:`check_leakage`.
        loader: task name → splits for every task (all sources then count as available);
            default :func:`clinprompt.data.registry.load_splits`.

    Returns:
        A :class:`LeakageReport` named ``target NAME``; a source that is the target itself is an
        error (it was trained on the target).
    """
    spec = target if isinstance(target, DatasetSpec) else resolve_dataset(target)
    report = LeakageReport(suite=f"target {spec.name}")
    available: list[str] = []
    for source in dict.fromkeys(sources):
        reason = None if loader is not None else _unavailable(source, data_root)
        if source == spec.name:
            report.errors[source] = "the target is one of the sources: it was seen in training"
        elif reason is not None:
            report.skipped[source] = reason
        else:
            available.append(source)
    if not available:
        return report
    load = loader or (lambda task: load_splits(spec if task == spec.name else task, data_root))
    checked = check_leakage(
        Suite(name=report.suite, sources=tuple(available), targets=(spec.name,)),
        min_chars=min_chars,
        min_sentence_chars=min_sentence_chars,
        loader=load,
    )
    report.overlaps, report.records = checked.overlaps, checked.records
    report.errors.update(checked.errors)
    return report
