"""Shared inputs of the decoding tests: a lively tiny backbone, three rows of two tasks, and
greedy generation with the backbone's EOS and padding."""

from __future__ import annotations

import pytest
import torch

from clinprompt.backbone import tiny_backbone
from clinprompt.data.collate import encode_prompt
from clinprompt.decoding import greedy_generate
from clinprompt.tasks.base import Example

TEXTS = [
    "Warfarin interacts with aspirin.",
    "Hb 9.8 g/dL, started on iron supplements twice daily.",
    "BP 120/80.",
]


@pytest.fixture(scope="session")
def lively():
    # A larger init scale than the default tiny model, so greedy outputs vary from step to step
    # (the default tiny model repeats one token, which would make equality checks vacuous).
    return tiny_backbone(seed=0, device="cpu", initializer_range=0.2)


@pytest.fixture(scope="session")
def batch(lively):
    tok = lively.tokenizer
    ids = [encode_prompt(tok, Example("Extract drugs.\n\n", t, "")) for t in TEXTS]
    gen = torch.Generator().manual_seed(1)
    task_prompts = torch.randn(2, 4, 64, generator=gen) * 0.5  # two tasks, P=4, D=64
    keys = ["a", "b", "a"]  # mixed tasks in one batch
    prompts = task_prompts[[0, 1, 0]]  # (B, P, D)
    return ids, prompts, keys


def generate(bb, prompts, ids, n=10, **kw):
    """Greedy generation of up to ``n`` tokens per row with ``bb``'s EOS and padding."""
    return greedy_generate(
        bb.model, prompts, ids, n, bb.tokenizer.eos_token_id, bb.tokenizer.pad_token_id, **kw
    )
