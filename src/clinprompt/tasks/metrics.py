"""Metrics as pure functions on plain Python data (lists, tuples, strings); values in [0, 1].

* Entities are ``(start, end, type)`` tuples, one list per document; relations are
  ``((head_start, head_end), (tail_start, tail_end), type)`` tuples. Duplicates within a document
  count once. Scores are micro-averaged over all documents.
* Strict entity match: same span and type. Lenient: overlapping spans and the same type, each gold
  and each predicted entity matched at most once (a maximum one-to-one matching, so the score does
  not depend on list order).
* Classification predictions may be ``None`` (missing or unparseable): always wrong, and not a class.
* Exact match and token F1 use SQuAD's answer normalisation (lower case, no punctuation, no
  articles a/an/the, single spaces) and take the maximum over the gold answers.
* ROUGE-1/2/L are F-measures from the ``rouge-score`` package with Porter stemming.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Hashable, Sequence
from functools import lru_cache
from typing import Any

__all__ = [
    "Entity",
    "Relation",
    "accuracy",
    "entity_f1",
    "exact_match",
    "macro_f1",
    "normalize_answer",
    "prf",
    "relation_f1",
    "rouge",
    "token_f1",
]

Entity = tuple[int, int, str]
Relation = tuple[tuple[int, int], tuple[int, int], str]


def prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    """Precision, recall and F1 from counts (0.0 where a denominator is 0)."""
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _max_matching(pairs: dict[int, list[int]]) -> int:
    """Size of a maximum bipartite matching; ``pairs[gold] = [pred, ...]`` (augmenting paths)."""
    owner: dict[int, int] = {}  # pred index -> gold index

    def augment(g: int, seen: set[int]) -> bool:
        for p in pairs[g]:
            if p in seen:
                continue
            seen.add(p)
            if p not in owner or augment(owner[p], seen):
                owner[p] = g
                return True
        return False

    return sum(augment(g, set()) for g in pairs)


def entity_f1(
    golds: Sequence[Sequence[Entity]], preds: Sequence[Sequence[Entity]], mode: str = "strict"
) -> dict[str, float]:
    """Micro precision/recall/F1 of entities over documents.

    Args:
        golds: per document, the gold ``(start, end, type)`` entities.
        preds: per document (aligned with ``golds``), the predicted entities.
        mode: ``strict`` (same span and type) or ``lenient`` (overlap and same type, one-to-one).

    Returns:
        ``{"precision", "recall", "f1"}``.
    """
    if mode not in ("strict", "lenient"):
        raise ValueError(f"mode must be 'strict' or 'lenient', got {mode!r}")
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold documents but {len(preds)} predicted ones")
    tp = n_gold = n_pred = 0
    for gold_doc, pred_doc in zip(golds, preds, strict=True):
        gold, pred = sorted(set(gold_doc)), sorted(set(pred_doc))
        n_gold += len(gold)
        n_pred += len(pred)
        if mode == "strict":
            tp += len(set(gold) & set(pred))
            continue
        pairs = {
            i: [j for j, (ps, pe, pt) in enumerate(pred) if pt == gt and ps < ge and gs < pe]
            for i, (gs, ge, gt) in enumerate(gold)
        }
        tp += _max_matching(pairs)
    return prf(tp, n_pred, n_gold)


def relation_f1(
    golds: Sequence[Sequence[Relation]], preds: Sequence[Sequence[Relation]]
) -> dict[str, float]:
    """Micro precision/recall/F1 of ``(head span, tail span, type)`` triples over documents."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold documents but {len(preds)} predicted ones")
    tp = n_gold = n_pred = 0
    for gold_doc, pred_doc in zip(golds, preds, strict=True):
        gold, pred = set(gold_doc), set(pred_doc)
        tp += len(gold & pred)
        n_gold += len(gold)
        n_pred += len(pred)
    return prf(tp, n_pred, n_gold)


def accuracy(golds: Sequence[Hashable], preds: Sequence[Hashable | None]) -> float:
    """Share of predictions equal to the gold label (``None`` is always wrong); 0.0 when empty."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold labels but {len(preds)} predictions")
    if not golds:
        return 0.0
    return sum(p is not None and p == g for g, p in zip(golds, preds, strict=True)) / len(golds)


def macro_f1(
    golds: Sequence[Hashable],
    preds: Sequence[Hashable | None],
    labels: Sequence[Hashable] | None = None,
) -> float:
    """Unweighted mean of per-class F1.

    The classes are ``labels`` when given, else every class seen in the golds or the (non-None)
    predictions. A ``None`` prediction is a miss for its gold class and a false positive for none.
    """
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold labels but {len(preds)} predictions")
    classes = (
        list(labels)
        if labels is not None
        else sorted(set(golds) | {p for p in preds if p is not None}, key=str)
    )
    if not classes:
        return 0.0
    scores = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(golds, preds, strict=True))
        fp = sum(g != c and p == c for g, p in zip(golds, preds, strict=True))
        fn = sum(g == c and p != c for g, p in zip(golds, preds, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / len(scores)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _as_list(golds: str | Sequence[str]) -> list[str]:
    return [golds] if isinstance(golds, str) else list(golds)


def exact_match(pred: str | None, golds: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    if pred is None:
        return 0.0
    p = normalize_answer(pred)
    return float(any(p == normalize_answer(g) for g in _as_list(golds)))


def _token_f1_one(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)  # both empty (e.g. an answer of only articles) counts as a match
    common = sum((Counter(p) & Counter(g)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def token_f1(pred: str | None, golds: str | Sequence[str]) -> float:
    """SQuAD token-overlap F1 of the prediction, maximum over the gold answers."""
    if pred is None:
        return 0.0
    return max((_token_f1_one(pred, g) for g in _as_list(golds)), default=0.0)


@lru_cache(maxsize=1)
def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(preds: Sequence[str | None], refs: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure (stemmed) of each prediction against its reference(s).

    A reference may be a list of strings: each ROUGE variant then takes the best reference.
    ``None`` predictions score 0. Returns ``{"rouge1", "rouge2", "rougeL"}`` (0.0 when empty).
    """
    if len(preds) != len(refs):
        raise ValueError(f"{len(refs)} references but {len(preds)} predictions")
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    if not preds:
        return totals
    scorer = _scorer()
    for pred, ref in zip(preds, refs, strict=True):
        if pred is None:
            continue
        scores = [scorer.score(r, pred) for r in _as_list(ref)]
        for key in totals:
            totals[key] += max((s[key].fmeasure for s in scores), default=0.0)
    return {key: value / len(preds) for key, value in totals.items()}
