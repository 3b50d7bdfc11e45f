"""Evaluation: metrics (pure functions), generation/scoring, reports and plots."""

from clinprompt.tasks.metrics import (
    accuracy,
    entity_f1,
    exact_match,
    macro_f1,
    normalize_answer,
    prf,
    relation_f1,
    rouge,
    token_f1,
)

__all__ = [
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
