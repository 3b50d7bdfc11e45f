"""clinprompt: one frozen LLM, many clinical NLP tasks through tiny learned soft prompts.

Multitask prompt tuning (shared prompt ⊙ rank-one task factors) distilled from per-task
teacher prompts, adapted to unseen clinical tasks, and served from one backbone.

The Python API (:mod:`clinprompt.api`) is re-exported here and imported on first use, so
``import clinprompt`` loads neither torch nor transformers::

    import clinprompt

    backbone = clinprompt.load_backbone("smollm2-135m")
    result = clinprompt.adapt_bank("my_notes.yaml", bank="builtin", out="my_bank", backbone=backbone)
    rows = clinprompt.predict(records, bank="my_bank", task="my_notes", backbone=backbone)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# name → the module that defines it (imported when the name is first used)
_API = {
    "adapt_bank": "clinprompt.api",
    "load_backbone": "clinprompt.api",
    "load_bank": "clinprompt.api",
    "predict": "clinprompt.api",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'clinprompt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
