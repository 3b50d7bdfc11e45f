"""Per-task statistics of a suite: role, type, split sizes and token lengths of the formatted text.

:func:`stats_suite` says what ``clinprompt data stats`` describes: a suite, or one dataset (a
registered name or a dataset config path) as a suite with that dataset as its only target.

Token lengths are those the model sees (template ``v1``): the prompt is instruction + input +
answer cue tokenized in pieces as :func:`clinprompt.data.collate.encode_prompt` does (without
truncation), the target is ``" " + target`` plus EOS.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clinprompt.data.registry import (
    UnknownDatasetError,
    get_dataset,
    is_config_path,
    load_splits,
    resolve_dataset,
)
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.suite import Suite, SuiteError, list_suites, load_suite

__all__ = ["LengthStats", "TaskStats", "length_stats", "stats_suite", "suite_stats"]


@dataclass(frozen=True)
class LengthStats:
    """Token lengths over a sample of examples."""

    mean: float
    p95: int
    max: int


@dataclass
class TaskStats:
    """One row of ``clinprompt data stats``; ``note`` says why something is missing."""

    task: str
    role: str
    task_type: str
    synthetic: bool
    splits: dict[str, int] = field(default_factory=dict)
    examples_tokenized: int = 0
    prompt_tokens: LengthStats | None = None
    target_tokens: LengthStats | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def _is_dataset_config(path: Path) -> bool:
    """Whether a YAML file is a dataset config (task type, splits) rather than a suite (sources,
    targets); a file that is not valid YAML counts as a dataset config when it mentions a task type,
    so that its error is reported as file:line by the dataset config reader."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False  # the suite loader reports the file's problem
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "task_type" in text
    keys = set(data) if isinstance(data, dict) else set()
    return not keys & {"sources", "targets"} and bool(keys & {"task_type", "splits", "format"})


def stats_suite(name_or_path: str | Path) -> Suite:
    """The suite ``clinprompt data stats`` describes.

    A built-in suite name or a suite YAML is loaded as such; a registered dataset name or a
    dataset config path (a YAML with ``task_type``) becomes a suite named after the dataset with
    that dataset as its only target.

    Raises:
        SuiteError: an unknown name, a missing file, or a suite file with problems.
        RecordError: a dataset config with problems (each as ``config.yaml:LINE: field ...``).
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text in list_suites() or (path.is_file() and not _is_dataset_config(path)):
        return load_suite(text)
    if is_config_path(text) and not path.is_file():
        raise SuiteError(
            f"{text}: no such file (expected a suite YAML or a dataset config YAML; {path.resolve()})"
        )
    try:
        spec = resolve_dataset(text)
    except UnknownDatasetError:
        try:
            return load_suite(text)
        except SuiteError as e:
            raise SuiteError(
                f"{e}; nor is it a registered dataset (`clinprompt data list`) or a dataset "
                f"config path (.yaml)"
            ) from None
    return Suite(name=spec.name, sources=(), targets=(spec.name,), description=spec.description)


def length_stats(lengths: list[int]) -> LengthStats | None:
    """Mean, 95th percentile (nearest rank) and max; None for no lengths."""
    if not lengths:
        return None
    ordered = sorted(lengths)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return LengthStats(mean=round(sum(ordered) / len(ordered), 1), p95=p95, max=ordered[-1])


def _sample(records: Records, limit: int, seed: int) -> Records:
    if limit <= 0 or len(records) <= limit:
        return records
    return random.Random(seed).sample(records, limit)


def _token_lengths(
    tokenizer: Any, spec: DatasetSpec, records: Records
) -> tuple[list[int], list[int]]:
    """Prompt and target token counts of ``records`` (batched tokenization)."""
    from clinprompt.tasks import ANSWER_CUE, format_example

    examples = [format_example(r, spec) for r in records]

    def count(texts: list[str]) -> list[int]:
        return (
            [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
            if texts
            else []
        )

    cue = count([ANSWER_CUE])[0]
    heads = count([e.prompt_head for e in examples])
    inputs = count([e.input for e in examples])
    targets = count([" " + e.target for e in examples])
    return [h + i + cue for h, i in zip(heads, inputs, strict=True)], [
        t + 1 for t in targets
    ]  # +1: EOS


def suite_stats(
    suite: Suite,
    data_root: str | Path | None = None,
    backbone: str | None = "smollm2-135m",
    max_examples: int = 1000,
    seed: int = 0,
    loader: Callable[[str], dict[str, Records]] | None = None,
    tokenizer: Any = None,
) -> list[TaskStats]:
    """Statistics of every task of ``suite`` (sources first).

    Args:
        suite: the suite.
        data_root: where native files live (see :func:`clinprompt.data.registry.resolve_data_root`).
        backbone: whose tokenizer counts tokens; None skips token lengths.
        max_examples: per split, at most this many examples (a seeded sample) are tokenized; split
            sizes are always exact. 0 tokenizes everything.
        seed: seed of that sample.
        loader: task name → splits; default :func:`clinprompt.data.registry.load_splits`.
        tokenizer: a tokenizer to use instead of the backbone's (``backbone`` is then ignored).

    Returns:
        One :class:`TaskStats` per task. A task that fails to load, or whose examples cannot be
        formatted or tokenized, keeps its row with the reason in ``note`` (nothing is raised).
    """
    load = loader or (lambda task: load_splits(task, data_root))
    token_note = ""
    if tokenizer is None and backbone is not None:
        try:
            from clinprompt.backbone import load_tokenizer

            tokenizer = load_tokenizer(backbone)
        except Exception as e:  # stats without token lengths are still useful
            token_note = f"token lengths unavailable: tokenizer of {backbone!r} did not load ({type(e).__name__}: {e})"
    rows = []
    for task in suite.tasks:
        spec = get_dataset(task)
        row = TaskStats(
            task=task,
            role=suite.role(task),
            task_type=spec.task_type,
            synthetic=spec.synthetic,
            note=token_note,
        )
        rows.append(row)
        try:
            splits = load(task)
        except Exception as e:
            row.note = f"could not load: {type(e).__name__}: {e}"
            continue
        row.splits = {name: len(records) for name, records in splits.items()}
        if tokenizer is None:
            continue
        try:
            from clinprompt.tasks import get_task_type

            get_task_type(spec.task_type)
        except Exception as e:  # the task types are registered by clinprompt.tasks.<type>
            row.note = (
                f"token lengths unavailable: task type {spec.task_type!r} is not available ({e})"
            )
            continue
        prompts: list[int] = []
        targets: list[int] = []
        try:
            for records in splits.values():
                p, t = _token_lengths(tokenizer, spec, _sample(records, max_examples, seed))
                prompts += p
                targets += t
        except Exception as e:  # e.g. the task type is not implemented yet
            row.note = f"token lengths unavailable: could not format {spec.task_type} examples ({type(e).__name__}: {e})"
            continue
        row.examples_tokenized = len(prompts)
        row.prompt_tokens, row.target_tokens = length_stats(prompts), length_stats(targets)
    return rows
