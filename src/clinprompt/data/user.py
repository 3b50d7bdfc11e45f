"""User dataset configs ("bring your own dataset"): a YAML file → a registered :class:`DatasetSpec`.

The config is the one of ``../shared/spec/records.md``::

    name: my_ner                 # registry key, snake_case
    task_type: ner               # ner | re | qa | nli | sum
    splits: {train: data/train.jsonl, test: data/test.jsonl}   # any of train/dev/test
    labels: [Drug, Problem]      # optional: entity types (ner), relation types (re), classes (nli)
    instruction: "Extract ..."   # optional: each task type has a default
    answer_style: short          # optional, qa without options: short | long
    joint: false                 # optional, re: extract entities and relations together
    pair_types: [[Drug, AdverseEffect]]   # optional, re per pair: only pairs of these (head
                                 # type, tail type) are asked; others are `none` (default: all)
    description: "..."           # optional, one line for listings

Split paths are relative to the YAML's folder. By default they are JSONL record files (read and
validated by :func:`clinprompt.tasks.records.read_records` when the splits are loaded).
**BRAT standoff** folders (``.txt``/``.ann`` pairs, e.g. n2c2 2018) are read with
``format: brat`` (ner or re only) and an optional ``brat:`` block::

    format: brat
    splits: {train: n2c2/train, test: n2c2/test}   # folders
    brat: {unit: sentence, discontinuous: span, entity_types: [Drug, Dosage]}

(see :func:`clinprompt.data.loaders.brat.load_brat`). A BRAT dataset has a loader instead of
``paths`` and needs no data root. Every problem in a config is reported at once as a
:class:`~clinprompt.tasks.records.RecordError`: ``config.yaml:LINE: field 'x': expected ...``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from clinprompt.data.registry import UnknownDatasetError, get_dataset, register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.tasks.base import TASK_TYPES
from clinprompt.tasks.records import Issue, RecordError, describe
from clinprompt.tasks.spec import is_pair_types

__all__ = ["load_dataset_config"]

SPLITS = ("train", "dev", "test")
KEYS = (
    "name",
    "task_type",
    "splits",
    "labels",
    "instruction",
    "answer_style",
    "joint",
    "pair_types",
    "description",
    "format",
    "brat",
)
BRAT_KEYS = ("unit", "discontinuous", "entity_types")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _key_lines(text: str) -> dict[str, int]:
    """1-based line of each top-level key (``name``) and of each split (``splits.train``)."""
    import yaml

    lines: dict[str, int] = {}
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[str(key.value)] = key.start_mark.line + 1
            if isinstance(value, yaml.MappingNode):
                for sub, _ in value.value:
                    lines[f"{key.value}.{sub.value}"] = sub.start_mark.line + 1
    return lines


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Problems:
    def __init__(self, path: Path, lines: dict[str, int]):
        self.path, self.lines, self.issues = path, lines, []

    def add(self, field: str, message: str) -> None:
        line = self.lines.get(field) or self.lines.get(field.split(".")[0], 1)
        self.issues.append(Issue(str(self.path), line, field, message))


def _check(config: dict[str, Any], problems: _Problems, base: Path) -> dict[str, Path]:
    for key in config:
        if key not in KEYS:
            problems.add(
                str(key),
                f"unknown setting{_suggest(str(key), KEYS)}; expected one of {', '.join(KEYS)}",
            )
    name = config.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.add(
            "name",
            f"expected a snake_case name (lower-case letters, digits, _), got {describe(name)}",
        )
    task_type = config.get("task_type")
    if task_type not in TASK_TYPES:
        problems.add(
            "task_type", f"expected one of {', '.join(TASK_TYPES)}, got {describe(task_type)}"
        )
    fmt = config.get("format", "jsonl")
    if fmt not in ("jsonl", "brat"):
        problems.add("format", f"expected jsonl or brat, got {describe(fmt)}")
    elif fmt == "brat" and task_type not in ("ner", "re"):
        problems.add("format", f"BRAT folders give ner or re records, not {task_type}")
    labels = config.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        problems.add("labels", f"expected a list of non-empty strings, got {describe(labels)}")
    elif len(set(labels)) != len(labels):
        problems.add("labels", f"expected distinct labels, got {labels}")
    for key in ("instruction", "description"):
        if config.get(key) is not None and (
            not isinstance(config[key], str) or not config[key].strip()
        ):
            problems.add(key, f"expected a non-empty string, got {describe(config[key])}")
    if config.get("answer_style", "short") not in ("short", "long"):
        problems.add(
            "answer_style", f"expected short or long, got {describe(config['answer_style'])}"
        )
    if not isinstance(config.get("joint", False), bool):
        problems.add("joint", f"expected true or false, got {describe(config['joint'])}")
    pair_types = config.get("pair_types", [])
    if not is_pair_types(pair_types):
        problems.add(
            "pair_types",
            f"expected a list of [head type, tail type] pairs (e.g. [[Drug, AdverseEffect]]), "
            f"got {describe(pair_types)}",
        )
    elif pair_types and task_type != "re":
        problems.add("pair_types", f"pair_types is for re tasks, not {task_type}")
    brat = config.get("brat", {})
    if "brat" in config and fmt != "brat":
        problems.add("brat", "a brat block needs format: brat")
    if not isinstance(brat, dict):
        problems.add("brat", f"expected a mapping ({', '.join(BRAT_KEYS)}), got {describe(brat)}")
    else:
        for key in brat:
            if key not in BRAT_KEYS:
                problems.add(
                    f"brat.{key}",
                    f"unknown BRAT setting{_suggest(str(key), BRAT_KEYS)}; expected one of {', '.join(BRAT_KEYS)}",
                )
        if brat.get("unit", "document") not in ("document", "sentence"):
            problems.add(
                "brat.unit", f"expected document or sentence, got {describe(brat['unit'])}"
            )
        if brat.get("discontinuous", "span") not in ("span", "first", "error"):
            problems.add(
                "brat.discontinuous",
                f"expected span, first or error, got {describe(brat['discontinuous'])}",
            )
        types = brat.get("entity_types")
        if types is not None and (
            not isinstance(types, list) or not all(isinstance(t, str) for t in types)
        ):
            problems.add(
                "brat.entity_types", f"expected a list of entity types, got {describe(types)}"
            )
    splits = config.get("splits")
    resolved: dict[str, Path] = {}
    if not isinstance(splits, dict) or not splits:
        what = "a folder of .txt/.ann files" if fmt == "brat" else "a JSONL file"
        problems.add(
            "splits",
            f"expected a mapping split name -> {what} (train, dev, test), got {describe(splits)}",
        )
        return resolved
    for split, value in splits.items():
        field = f"splits.{split}"
        if split not in SPLITS:
            problems.add(
                field,
                f"unknown split {split!r}{_suggest(str(split), SPLITS)}; expected train, dev or test",
            )
        elif not isinstance(value, str) or not value.strip():
            problems.add(field, f"expected a path, got {describe(value)}")
        else:
            path = Path(value).expanduser()
            path = path if path.is_absolute() else base / path
            if fmt == "brat" and not path.is_dir():
                problems.add(
                    field, f"expected a folder of BRAT .txt/.ann files at {path}; it does not exist"
                )
            elif fmt != "brat" and not path.is_file():
                problems.add(field, f"expected a JSONL file at {path}; it does not exist")
            resolved[split] = path
    return resolved


def _brat_loader(
    folders: dict[str, Path], task_type: str, options: dict[str, Any], labels: tuple[str, ...]
):
    from clinprompt.data.loaders.brat import load_brat

    def load(_data_root: Path) -> dict[str, Records]:
        return {
            split: load_brat(folder, task_type, labels=labels or None, **options)
            for split, folder in folders.items()
        }

    return load


def load_dataset_config(path: str | Path, register_it: bool = True) -> DatasetSpec:
    """Read a dataset YAML config, check it, and register (``register_it``) and return its spec.

    Commands resolve a config through :func:`clinprompt.data.registry.resolve_dataset`, which
    calls this. Loading the same config again returns the registered spec (a config file edited
    since it was registered replaces its registration); a name already taken by another dataset
    (a built-in one or another config file) is an error, also when not registering.

    Raises:
        RecordError: every problem with the config, each as ``file:line: field 'x': ...``.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RecordError(
            [Issue(str(path), 0, None, f"expected a readable UTF-8 YAML dataset config: {e}")]
        ) from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RecordError(
            [Issue(str(path), (mark.line + 1) if mark else 1, None, f"invalid YAML: {e}")]
        ) from None
    if not isinstance(config, dict):
        raise RecordError(
            [
                Issue(
                    str(path),
                    1,
                    None,
                    f"expected a YAML mapping (name, task_type, splits, ...), got {describe(config)}",
                )
            ]
        )
    problems = _Problems(path, _key_lines(text))
    resolved = _check(config, problems, path.resolve().parent)
    if problems.issues:
        raise RecordError(sorted(problems.issues, key=lambda issue: issue.line))
    fmt = config.get("format", "jsonl")
    labels = tuple(config.get("labels", []))
    common: dict[str, Any] = dict(
        name=config["name"],
        task_type=config["task_type"],
        labels=labels,
        instruction=config.get("instruction"),
        splits=tuple(resolved),
        answer_style=config.get("answer_style", "short"),
        joint=config.get("joint", False),
        pair_types=config.get("pair_types", []),  # tuples in TaskSpec.__post_init__
        description=config.get("description", f"user dataset from {path.resolve()}"),
    )
    extra: dict[str, Any] = {"config": str(path.resolve()), "format": fmt}
    if fmt == "brat":
        options = dict(config.get("brat") or {})
        extra.update(
            standalone=True, brat=options, folders={s: str(p) for s, p in resolved.items()}
        )
        spec = DatasetSpec(
            **common,
            loader=_brat_loader(resolved, config["task_type"], options, labels),
            extra=extra,
        )
    else:
        spec = DatasetSpec(**common, paths={s: str(p) for s, p in resolved.items()}, extra=extra)
    try:
        existing = get_dataset(spec.name)
    except UnknownDatasetError:
        return register(spec) if register_it else spec
    if (
        existing.to_dict() == spec.to_dict()
        and existing.paths == spec.paths
        and existing.extra == spec.extra
    ):
        return existing
    if existing.extra.get("config") == spec.extra["config"]:
        # the same file, edited since it was loaded: it is the same dataset, as it reads now
        return register(spec, replace=True) if register_it else spec
    if existing.extra.get("config"):
        origin = f"the dataset config {existing.extra['config']}"
    else:
        what = f": {existing.description}" if existing.description else ""
        origin = f"the built-in dataset{what}"
    raise RecordError(
        [
            Issue(
                str(path),
                problems.lines.get("name", 1),
                "name",
                f"dataset {spec.name!r} is already registered (by {origin}); "
                f"choose another name for {path.resolve()}",
            )
        ]
    )
