"""Shared fixtures: a tiny random LLaMA with the real SmolLM2 tokenizer (seconds), the real
backbone (loaded once per session, for the few tests marked ``backbone``), and the data root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny():
    """A deterministic tiny random LLaMA (D=64, 2 layers) with the real tokenizer, frozen, CPU."""
    from clinprompt.backbone import tiny_backbone

    return tiny_backbone(seed=0, device="cpu")


@pytest.fixture(scope="session")
def tokenizer(tiny):
    return tiny.tokenizer


@pytest.fixture(scope="session")
def encode_texts(tokenizer):
    """Texts → ``Encoded`` items whose every token after the first is a target token."""
    from clinprompt.data.collate import Encoded
    from clinprompt.prompts import IGNORE_INDEX

    def encode(texts: list[str]) -> list[Encoded]:
        out = []
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            out.append(Encoded(ids, [IGNORE_INDEX] + ids[1:], 1))
        return out

    return encode


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M backbone (converted once, then cached), in fp32 on every machine so
    that its tests see the same numbers whether or not the CPU has bf16 units."""
    from clinprompt.backbone import load_backbone

    return load_backbone("smollm2-135m", device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """``$CLINPROMPT_DATA_ROOT`` or ``<repo>/../shared/data``; skips the test when absent."""
    root = Path(os.environ.get("CLINPROMPT_DATA_ROOT") or REPO.parent / "shared" / "data")
    if not root.is_dir():
        pytest.skip(f"public datasets not found at {root} (set CLINPROMPT_DATA_ROOT)")
    return root


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny-model ops are too small to gain from two threads, and on a shared 2-core machine
    OpenMP's thread barriers stall each op for a scheduler slice (10-100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
