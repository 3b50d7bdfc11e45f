"""``EvalArgs``: one evaluation, declared once — each field is a ``clinprompt evaluate`` option.

Kept apart from :mod:`clinprompt.recipes.evaluate` so the command line can declare its options
without importing torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass
from typing import Any

from clinprompt.config.args import arg

__all__ = ["EvalArgs"]


@dataclass
class EvalArgs:
    """One evaluation. Every field is a ``clinprompt evaluate`` option of the same name."""

    dataset: str = arg(
        MISSING,
        "Dataset to evaluate on: a registered name (`clinprompt data list`) or a dataset config "
        "(.yaml: JSONL splits or format: brat; see docs/data.md).",
    )
    artifact: str | None = arg(
        None,
        "Bank directory, PEFT adapter directory (LoRA or prompt tuning) or .safetensors prompt; "
        "omit for the bare backbone with the instruction only.",
    )
    task: str | None = arg(
        None, "Task of the bank (default: the dataset's name, or the bank's only task)."
    )
    split: str = arg("test", "Split to evaluate.")
    limit: int | None = arg(None, "At most N examples (a seeded sample, kept in file order).")
    data_root: str | None = arg(
        None, "Folder of the public datasets (default: $CLINPROMPT_DATA_ROOT or ../shared/data)."
    )
    backbone: str | None = arg(None, "Backbone (default: the artifact's, else smollm2-135m).")
    device: str | None = arg(None, "cpu, cuda, cuda:1 (default: CUDA when available).")
    dtype: str = arg(
        "auto",
        "Backbone compute dtype; auto: bf16 on CUDA, on a CPU bf16 only where a cached probe "
        "shows it faster, else fp32 (recorded in metrics.json).",
        ("auto", "fp32", "bf16", "fp16"),
    )
    # Greedy decoding on a CPU is bound by reading the weights: large batches are nearly free.
    batch_size: int = arg(32, "Examples per forward pass.")
    max_input_tokens: int = arg(256, "Input tokens kept per example (as in training).")
    max_new_tokens: int | None = arg(None, "Generation budget (default: per task type, 8-96).")
    generate: bool = arg(
        False,
        "Generate even for classification tasks instead of scoring every option in one forward pass.",
    )
    seed: int = arg(0, "Seed of the --limit sample.")
    method: str | None = arg(
        None, "Report column: zeroshot, pt, lora, mpt (default: from the artifact)."
    )
    setting: str = arg("full", "Training setting of the artifact: full, k16, k64, k0.")
    run_dir: str | None = arg(
        None, "Write into RUN/eval/<method>/<dataset>/<setting>/ (read by `clinprompt report`)."
    )
    out: str | None = arg(
        None, "Write predictions.jsonl, metrics.json and config.json into this directory instead."
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
