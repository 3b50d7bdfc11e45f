"""Deterministic, seeded splitting of single-split datasets.

Every record (or every *group* of records, e.g. all questions on one article) gets a rank from
``sha256(f"{seed}:{key}")``; groups are sorted by that rank and cut into consecutive blocks of
the requested shares (rounded to whole groups). The result depends only on the seed and the
keys — not on the machine, the Python hash seed, or the order of the input — and splits are
disjoint by construction. Within a split, records keep their input order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["DEFAULT_SEED", "hash_fraction", "seeded_split", "split_by_blocks"]

DEFAULT_SEED = 13
T = TypeVar("T")


def _rank(seed: int, key: Hashable) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def hash_fraction(seed: int, key: Hashable) -> float:
    """A number in [0, 1) fixed by ``seed`` and ``key`` (identical on every machine)."""
    return int(_rank(seed, key)[:16], 16) / 16**16


def _check_ratios(ratios: Mapping[str, float]) -> None:
    if not ratios:
        raise ValueError(
            "expected at least one split name with its share, e.g. {'train': 0.8, 'test': 0.2}"
        )
    bad = {k: v for k, v in ratios.items() if not isinstance(v, int | float) or v < 0}
    if bad:
        raise ValueError(f"split shares must be numbers >= 0, got {bad}")
    total = sum(ratios.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split shares must add up to 1, got {dict(ratios)} (sum {total:g})")


def seeded_split(
    records: Sequence[T],
    ratios: Mapping[str, float],
    seed: int = DEFAULT_SEED,
    key: Callable[[T], Hashable] | None = None,
    group: Callable[[T], Hashable] | None = None,
) -> dict[str, list[T]]:
    """Split ``records`` into ``ratios`` (split name → share, summing to 1), deterministically.

    Args:
        records: the records to split (any objects; dict records use their ``id`` by default).
        ratios: e.g. ``{"train": 0.8, "dev": 0.1, "test": 0.1}``; the order gives the cut order.
        seed: the split seed; the same seed and keys give the same split on any machine.
        key: a record's stable identity (default ``record["id"]``); used when ``group`` is None.
        group: records with the same group key always land in the same split (e.g. an article).

    Returns:
        ``{split: records}`` for every split name in ``ratios`` (possibly empty lists).
    """
    _check_ratios(ratios)
    key_of: Callable[[Any], Hashable] = group or key or (lambda r: r["id"])
    keys = [key_of(r) for r in records]
    groups = sorted(set(keys), key=lambda k: (_rank(seed, k), str(k)))
    n = len(groups)
    assigned: dict[Hashable, str] = {}
    cumulative, start = 0.0, 0
    names = list(ratios)
    for i, name in enumerate(names):
        cumulative += ratios[name]
        stop = n if i == len(names) - 1 else round(cumulative * n)
        for g in groups[start:stop]:
            assigned[g] = name
        start = stop
    out: dict[str, list[T]] = {name: [] for name in names}
    for record, k in zip(records, keys, strict=True):
        out[assigned[k]].append(record)
    return out


def split_by_blocks(
    records: Sequence[T], ratios: Mapping[str, float], block: int, seed: int = DEFAULT_SEED
) -> dict[str, list[T]]:
    """Seeded split of runs of ``block`` consecutive records (for sentence-level files whose
    documents are not marked: neighbouring sentences, likely from one document, stay together)."""
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    index = {id(r): i for i, r in enumerate(records)}
    return seeded_split(records, ratios, seed, group=lambda r: index[id(r)] // block)
