"""Shared by the recipe tests of one user target: the dataset configs of tests/assets, and a
bank built as distillation writes one (P* and one factor task per source) on the tiny model."""

from __future__ import annotations

from pathlib import Path

import torch

from clinprompt.data.registry import get_dataset
from clinprompt.prompts.bank import PromptBank, TaskEntry

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CONFIGS = {"brat": ASSETS / "user" / "brat_ner.yaml", "jsonl": ASSETS / "user" / "notes_ner.yaml"}
OVERRIDES = ["adapt.shots=[2]", "adapt.zero_shot=closest", "adapt.train={steps: 4}"]
SOURCES = ("syn_med_ner", "syn_ade_re")


def make_source_bank(path: Path, tiny, seed: int = 0) -> Path:
    """A bank as distillation writes one: P* (P=4, D=64) and one factor task per source."""
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(4, 64, generator=gen) * 0.02  # P = smoke's prompt.tokens
    bank = PromptBank.create(path, tiny.fingerprint, 4, 1, shared=shared)
    for name in SOURCES:
        spec = get_dataset(name)
        entry = TaskEntry(
            name,
            spec.task_type,
            "factors",
            dataset=name,
            meta={"method": "mpt-source"},
            spec=spec.task_spec(),
        )
        bank.add_factors(
            entry, 1 + 0.1 * torch.randn(4, 1, generator=gen), torch.ones(1, 64)
        )  # u (P, R), v (R, D)
    return path
