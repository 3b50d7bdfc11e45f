"""Fixtures for the dataset tests: the data root of ../shared/data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "tests" / "assets"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """``$CLINPROMPT_DATA_ROOT`` else ``<repo>/../shared/data``; skips the test when it is absent."""
    root = Path(os.environ.get("CLINPROMPT_DATA_ROOT") or REPO.parent / "shared" / "data")
    if not root.is_dir():
        pytest.skip(
            f"public datasets not found at {root} (set CLINPROMPT_DATA_ROOT to the folder holding them)"
        )
    return root


@pytest.fixture(scope="session")
def assets() -> Path:
    """The hand-made test files under tests/assets."""
    return ASSETS
