"""Keep every target's text out of source training.

Biomedical corpora reuse the same PubMed abstracts (ADE sentences reappear in BC5CDR and
BC2GM), so a suite's sources can contain its targets' text. :func:`load_suite_splits` loads a
suite and drops each *source* record that shares text with any *target* record, by the same
criteria :func:`clinprompt.data.suite.check_leakage` uses (a whole normalised field, or a
sentence of at least ``min_sentence_chars`` characters). Targets are left intact, so their
published splits and scores stay comparable; what was removed is reported.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clinprompt.data.registry import load_splits
from clinprompt.data.spec import Records
from clinprompt.data.suite import Suite, _fields, _sentences, normalize_text

__all__ = ["SuiteData", "TargetText", "load_suite_splits", "suite_target_text"]


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


@dataclass(frozen=True)
class TargetText:
    """Hashes of the normalised target text: whole fields and sentences."""

    whole: frozenset[int]
    sentences: frozenset[int]
    min_chars: int = 20
    min_sentence_chars: int = 50

    @classmethod
    def of(
        cls, records_by_split: list[Records], min_chars: int = 20, min_sentence_chars: int = 50
    ) -> TargetText:
        whole: set[int] = set()
        sentences: set[int] = set()
        for records in records_by_split:
            for record in records:
                for _, value in _fields(record):
                    norm = normalize_text(value)
                    if len(norm) >= min_chars:
                        whole.add(hash(norm))
                    sentences.update(hash(s) for s in _sentences(value, min_sentence_chars))
        return cls(frozenset(whole), frozenset(sentences), min_chars, min_sentence_chars)

    def shares(self, record: dict) -> bool:
        """Whether a record has a whole field or a sentence in common with the targets."""
        return any(
            hash(normalize_text(value)) in self.whole
            or any(hash(s) in self.sentences for s in _sentences(value, self.min_sentence_chars))
            for _, value in _fields(record)
        )

    def drop_shared(self, records: Records) -> tuple[Records, list[str]]:
        """(records without target text, ids of those removed)."""
        kept: Records = []
        removed: list[str] = []
        for record in records:
            if self.shares(record):
                removed.append(str(record.get("id")))
            else:
                kept.append(record)
        return kept, removed


@functools.lru_cache(maxsize=4)
def suite_target_text(targets: tuple[str, ...], data_root: str | None) -> TargetText:
    """The :class:`TargetText` of every split of ``targets`` (cached: training loads it per source)."""
    return TargetText.of(
        [records for t in targets for records in load_splits(t, data_root).values()]
    )


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
    text = TargetText.of(
        [r for t in suite.targets for r in splits[t].values()], min_chars, min_sentence_chars
    )
    for task in suite.sources:
        for split, records in splits[task].items():
            splits[task][split], removed = text.drop_shared(records)
            if removed:
                data.removed.setdefault(task, {})[split] = removed
    return data
