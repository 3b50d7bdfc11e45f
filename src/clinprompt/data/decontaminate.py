"""Keep every target's text out of source training.

Biomedical corpora reuse the same PubMed abstracts (ADE sentences reappear in BC5CDR and
BC2GM), so a suite's sources can contain its targets' text. :func:`load_suite_splits` loads a
suite and drops each *source* record that shares text with any *target* record, by the same
criteria :func:`clinprompt.data.suite.check_leakage` uses (a whole normalised field, or a
sentence of at least ``min_sentence_chars`` characters). Targets are left intact, so their
published splits and scores stay comparable; what was removed is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clinprompt.data.registry import load_splits
from clinprompt.data.spec import Records
from clinprompt.data.suite import Suite, _fields, _sentences, normalize_text

__all__ = ["SuiteData", "load_suite_splits"]


@dataclass
class SuiteData:
    """Every split of every task of a suite, sources decontaminated.

    Attributes:
        splits: task → split → records.
        removed: source task → split → ids of the records dropped for sharing target text.
    """

    suite: Suite
    splits: dict[str, dict[str, Records]]
    removed: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def removed_count(self) -> int:
        return sum(len(ids) for per in self.removed.values() for ids in per.values())


def load_suite_splits(
    suite: Suite,
    data_root: str | Path | None = None,
    *,
    decontaminate: bool = True,
    min_chars: int = 20,
    min_sentence_chars: int = 50,
    loader: Callable[[str], dict[str, Records]] | None = None,
) -> SuiteData:
    """Load a suite; with ``decontaminate``, drop source records that share text with a target."""
    load = loader or (lambda task: load_splits(task, data_root))
    splits = {task: load(task) for task in suite.tasks}
    data = SuiteData(suite, splits)
    if not decontaminate:
        return data
    whole: set[int] = set()
    sentences: set[int] = set()
    for task in suite.targets:
        for records in splits[task].values():
            for record in records:
                for _, value in _fields(record):
                    norm = normalize_text(value)
                    if len(norm) >= min_chars:
                        whole.add(hash(norm))
                    sentences.update(hash(s) for s in _sentences(value, min_sentence_chars))
    for task in suite.sources:
        for split, records in splits[task].items():
            kept: Records = []
            for record in records:
                shared = any(
                    hash(normalize_text(value)) in whole
                    or any(hash(s) in sentences for s in _sentences(value, min_sentence_chars))
                    for _, value in _fields(record)
                )
                if shared:
                    data.removed.setdefault(task, {}).setdefault(split, []).append(str(record.get("id")))
                else:
                    kept.append(record)
            splits[task][split] = kept
    return data
