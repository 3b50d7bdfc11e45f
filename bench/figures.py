"""The machine-readable figures every bench script writes with ``--json FILE``.

One JSON object per run::

    {
      "bench": "train_speed",              # which script
      "command": "python bench/...",       # the exact command line
      "dtype": {"dtype": "bf16", "requested": "auto", "reason": "..."},   # DtypeChoice.to_dict()
      "threads": 2,                        # torch threads
      "machine": {"cpu": ..., "bf16_cpu_flags": [...], "cpu_cores": ..., "torch": ..., "gpu": ...},
      "settings": {...},                   # the script's options that shape the figures
      "figures": {...},                    # clinprompt's own figures
      "peer": {...},                       # the peer's figures (PEFT), measured in the same run
      "ratios": {"vs_peft_same_batches": 1.61, ...},   # each headline ratio, by name
      "notes": ["..."]                     # what a reader must know (e.g. auto resolved to fp32)
    }

Ratios are clinprompt over the peer (or auto over fp32): above 1 means clinprompt is faster.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["bench_record", "command_of", "ratio", "write_record"]


def command_of(script: str, argv: list[str] | None) -> str:
    """``python bench/<script> ARGS`` as typed (``argv`` None: this process's arguments)."""
    return shlex.join(["python", f"bench/{script}", *(sys.argv[1:] if argv is None else argv)])


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` rounded to 3 decimals; None when either is missing or zero."""
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def bench_record(
    bench: str,
    command: str,
    dtype: dict[str, Any],
    figures: dict[str, Any],
    peer: dict[str, Any],
    ratios: dict[str, float | None],
    settings: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The one object a bench script writes (see the module docstring)."""
    import torch

    from clinprompt.precision import machine_info

    return {
        "bench": bench,
        "command": command,
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "machine": machine_info(),
        "settings": settings or {},
        "figures": figures,
        "peer": peer,
        "ratios": ratios,
        "notes": notes or [],
    }


def write_record(path: str | Path | None, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` as indented JSON (nothing when ``path`` is None)."""
    if path is None:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    print(f"figures written to {out}")
