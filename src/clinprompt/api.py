"""The Python API: a bank, a backbone, adaptation to your dataset, predictions — in a few calls.

::

    import clinprompt

    backbone = clinprompt.load_backbone("smollm2-135m")
    result = clinprompt.adapt_bank("my_notes.yaml", bank="builtin", out="my_bank", backbone=backbone)
    rows = clinprompt.predict([{"id": "1", "text": "Started metformin."}], bank="my_bank",
                              task=result.dataset.name, backbone=backbone)

Each function is the command line's work, from Python: :func:`adapt_bank` is
``clinprompt adapt PROFILE --bank BANK --dataset my.yaml --out NEWBANK`` and :func:`predict`
answers as ``POST /v1/predict`` does. The functions are re-exported by ``clinprompt`` (imported
on first use, so ``import clinprompt`` stays fast).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clinprompt.backbone import Backbone
    from clinprompt.prompts.bank import PromptBank
    from clinprompt.recipes.target_run import BankAdaptResult

__all__ = ["adapt_bank", "load_backbone", "load_bank", "predict"]


def load_backbone(name: str = "smollm2-135m", device: str | None = None, dtype: str = "auto"):
    """The frozen backbone ``name`` (built-in name, model directory or hub id): see
    :func:`clinprompt.backbone.load_backbone`."""
    from clinprompt.backbone import load_backbone as load

    return load(name, device=device, dtype=dtype)


def load_bank(bank: str | Path = "builtin") -> PromptBank:
    """The prompt bank ``bank`` (a directory, or ``builtin``: the one shipped with the package)."""
    from clinprompt.prompts.bank import PromptBank
    from clinprompt.prompts.bank_location import resolve_bank

    return PromptBank.load(resolve_bank(bank))


def adapt_bank(
    dataset: str | Path,
    bank: str | Path = "builtin",
    out: str | Path | None = None,
    profile: str | Path = "cpu",
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    backbone: Backbone | None = None,
) -> BankAdaptResult:
    """Adapt ``bank`` to the target ``dataset`` and add it to ``out`` (a copy of ``bank``).

    Args:
        dataset: a dataset config (.yaml: JSONL splits or ``format: brat``) or a registered name.
        bank: the bank to adapt: a directory, or ``builtin``.
        out: the new bank (``bank`` is left untouched); None adds to ``bank`` itself (refused
            for the built-in bank).
        profile: budgets and settings: a profile name (``cpu``, ``smoke``, ``gpu``) or a YAML.
        overrides: dotted overrides, e.g. ``["adapt.modes=[full]", "adapt.train.steps=20"]``.
        run_dir: the run directory (default ``runs/<dataset name>``).
        backbone: an already loaded backbone (default: the profile's).

    Returns:
        A :class:`~clinprompt.recipes.target_run.BankAdaptResult`: ``bank`` (where the target went),
        ``artifacts`` (one per setting), ``entries()``, ``leakage``, ``data``, ``run_dir``.
    """
    from clinprompt.config import load_config
    from clinprompt.recipes.target_run import adapt_bank as adapt

    args = load_config(profile, list(overrides))
    return adapt(args, bank, dataset, out=out, run_dir=run_dir, backbone=backbone)


def predict(
    records: Sequence[dict[str, Any]],
    bank: str | Path = "builtin",
    task: str | None = None,
    backbone: Backbone | None = None,
    batch_size: int = 32,
    max_input_tokens: int = 256,
) -> list[dict[str, Any]]:
    """Answer ``records`` with one task of a bank, as ``POST /v1/predict`` does.

    Args:
        records: input records of the task's type (``text`` for NER; ``text`` and ``entities``
            for RE; ``question`` and ``options`` for QA; ``premise``/``hypothesis`` for NLI; ``source``
            for summarization), each with an ``id``.
        bank: a bank directory, or ``builtin``.
        task: the bank's task (default: the bank's only task).
        backbone: an already loaded backbone (default: the bank's).
        batch_size: records per forward pass.
        max_input_tokens: input tokens kept per record (as in training).

    Returns:
        Per record: ``id``, ``prediction`` (entities, relations, answer, label or summary),
        ``generation`` (the raw answer) and ``parsed_ok``.

    Raises:
        EvalError: the task is not in the bank, or the backbone is not the bank's.
    """
    from clinprompt.backbone import load_backbone as load
    from clinprompt.eval.artifact import EvalError, resolve_artifact
    from clinprompt.eval.predict import answer_records
    from clinprompt.prompts.bank_location import resolve_bank

    artifact = resolve_artifact(resolve_bank(bank), task, task or "")
    if artifact.spec is None or artifact.fingerprint is None:
        raise EvalError(f"{artifact.describe()} records no task spec or backbone")
    backbone = backbone or load(artifact.fingerprint.name)
    spec = artifact.check_backbone(artifact.spec, backbone)  # type: ignore[arg-type]
    answers = answer_records(
        backbone, artifact, spec, list(records), max_input_tokens, None, batch_size
    )  # type: ignore[arg-type]
    return [
        {
            "id": r.get("id"),
            "prediction": a.parsed.prediction,
            "generation": a.text,
            "parsed_ok": a.parsed.ok,
        }
        for r, a in zip(records, answers, strict=True)
    ]
