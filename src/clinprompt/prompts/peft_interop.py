"""Exchange task prompts with PEFT: export a bank task as a ``PROMPT_TUNING`` adapter, import one.

An exported adapter is a standard PEFT directory::

    OUT_DIR/
      adapter_config.json          peft_type PROMPT_TUNING, task_type CAUSAL_LM, P, D, base model
      adapter_model.safetensors    prompt_embeddings (P, D): the task's effective prompt
      clinprompt_task.json         what PEFT ignores: task type, labels, instruction, fingerprint

``PeftModel.from_pretrained(base, OUT_DIR)`` then generates what clinprompt generates for the same
prompt text (the prompt must still be formatted as in training: see ``encode_prompt``). Importing
reads such a directory back (from clinprompt or from any PEFT training run) into a bank as a
single-prompt task, e.g. a teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from clinprompt.artifacts import atomic_dir, load_tensors, read_json, save_tensors, write_json
from clinprompt.prompts.bank import BankError, PromptBank, TaskEntry

__all__ = [
    "PEFT_SIDECAR",
    "export_peft",
    "import_peft",
    "patch_peft_generation",
    "read_peft_prompt",
]

PEFT_SIDECAR = "clinprompt_task.json"
_WEIGHTS = "adapter_model.safetensors"


def export_peft(
    bank: PromptBank,
    task: str,
    out_dir: str | Path,
    base_model: str | None = None,
    model_config: Any | None = None,
) -> Path:
    """Write task ``task`` of ``bank`` as a PEFT prompt-tuning adapter directory (atomically).

    Args:
        bank: the source bank.
        task: the task name.
        out_dir: the adapter directory to create (replaced when it exists).
        base_model: ``base_model_name_or_path`` to record; default the bank's backbone name.
        model_config: the backbone's config, to record its layer and head counts (optional).

    Returns:
        ``out_dir``.
    """
    from peft import PromptTuningConfig, TaskType

    entry = bank.entry(task)
    prompt = bank.task_prompt(task)  # (P, D) fp32
    config = PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=bank.prompt_tokens,
        token_dim=bank.dim,
        num_transformer_submodules=1,
        num_attention_heads=getattr(model_config, "num_attention_heads", None),
        num_layers=getattr(model_config, "num_hidden_layers", None) or bank.fingerprint.num_layers,
        base_model_name_or_path=base_model or bank.fingerprint.name,
        inference_mode=True,
    )
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        config.save_pretrained(str(tmp))
        save_tensors(tmp / _WEIGHTS, {"prompt_embeddings": prompt}, metadata={"format": "pt"})
        write_json(
            tmp / PEFT_SIDECAR,
            {
                "task": entry.to_dict(),
                "backbone": bank.fingerprint.to_dict(),
                "source_bank": str(bank.path),
            },
        )
    return out_dir


def read_peft_prompt(
    adapter_dir: str | Path,
) -> tuple[torch.Tensor, dict[str, Any], dict[str, Any] | None]:
    """The (P, D) prompt of a PEFT prompt-tuning adapter, its config, and clinprompt's sidecar.

    Raises:
        BankError: not a causal-LM PROMPT_TUNING adapter, or weights only in pickle format.
    """
    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.exists():
        raise BankError(f"{adapter_dir} is not a PEFT adapter: {cfg_path} is missing")
    config = read_json(cfg_path)
    if config.get("peft_type") != "PROMPT_TUNING":
        raise BankError(
            f"{cfg_path}: peft_type is {config.get('peft_type')!r}; only PROMPT_TUNING adapters hold a plain soft prompt"
        )
    if config.get("task_type") not in (None, "CAUSAL_LM"):
        raise BankError(f"{cfg_path}: task_type is {config.get('task_type')!r}; expected CAUSAL_LM")
    weights = adapter_dir / _WEIGHTS
    if not weights.exists():
        hint = (
            " (adapter_model.bin is a pickle; re-save it with safe_serialization=True)"
            if (adapter_dir / "adapter_model.bin").exists()
            else ""
        )
        raise BankError(f"{weights} is missing{hint}")
    tensors = load_tensors(weights)
    if "prompt_embeddings" not in tensors:
        raise BankError(f"{weights}: no 'prompt_embeddings' tensor (found {sorted(tensors)})")
    prompt = tensors["prompt_embeddings"].float()
    p = int(config.get("num_virtual_tokens") or prompt.shape[0])
    if prompt.dim() != 2 or prompt.shape[0] < p:
        raise BankError(
            f"{weights}: prompt_embeddings has shape {tuple(prompt.shape)}; expected ({p}, D)"
        )
    # Causal LMs have one transformer submodule, so the first P rows are the prompt.
    prompt = prompt[:p]
    sidecar_path = adapter_dir / PEFT_SIDECAR
    sidecar = read_json(sidecar_path) if sidecar_path.exists() else None
    return prompt, config, sidecar


def import_peft(
    adapter_dir: str | Path,
    bank: PromptBank,
    name: str,
    task_type: str | None = None,
    labels: list[str] | None = None,
    instruction: str | None = None,
    dataset: str | None = None,
    replace: bool = False,
) -> TaskEntry:
    """Add a PEFT prompt-tuning adapter to ``bank`` as a single-prompt task named ``name``.

    Task metadata not given here comes from the adapter's clinprompt sidecar when it has one.

    Raises:
        BankError: the adapter does not fit the bank (P, D, backbone) or misses a task type.
    """
    prompt, config, sidecar = read_peft_prompt(adapter_dir)
    old = TaskEntry.from_dict(sidecar["task"]) if sidecar and "task" in sidecar else None
    if sidecar and "backbone" in sidecar:
        from clinprompt.backbone import Fingerprint

        bank.check_backbone(Fingerprint.from_dict(sidecar["backbone"]))
    if tuple(prompt.shape) != (bank.prompt_tokens, bank.dim):
        raise BankError(
            f"{adapter_dir}: the adapter's prompt is {tuple(prompt.shape)} (num_virtual_tokens, token_dim) but the bank "
            f"{bank.path} holds prompts of ({bank.prompt_tokens}, {bank.dim}); import it into a bank with the same P and backbone"
        )
    task_type = task_type or (old.task_type if old else None)
    if not task_type:
        raise BankError(
            f"{adapter_dir}: give the task type (--task-type ner|re|qa|nli|sum); the adapter does not say"
        )
    entry = TaskEntry(
        name=name,
        task_type=task_type,
        kind="prompt",
        labels=list(labels if labels is not None else (old.labels if old else [])),
        instruction=instruction if instruction is not None else (old.instruction if old else None),
        dataset=dataset if dataset is not None else (old.dataset if old else None),
        meta={
            "source": "peft",
            "adapter": str(adapter_dir),
            "base_model": config.get("base_model_name_or_path"),
        },
        spec=old.spec if old and old.task_type == task_type else None,
    )
    if old:
        entry.template_version = old.template_version
    return bank.add_prompt(entry, prompt, replace=replace)


def patch_peft_generation(peft_model: Any) -> Any:
    """Make a PEFT prompt-tuning model's *cached* ``generate`` inject its prompt once.

    PEFT 0.21 looks for the KV cache under ``past_key_values``; transformers 5 passes it as
    ``cache``, so PEFT sees no cache and prepends the prompt again at every decode step (the
    tokens after the first are wrong; ``use_cache=False`` is right but quadratic). This renames
    the key around PEFT's ``prepare_inputs_for_generation`` on this instance only; it is a no-op
    where the base model still takes ``past_key_values``.

    Returns:
        ``peft_model``, patched in place.
    """
    import inspect

    base = peft_model.get_base_model()
    if "past_key_values" in inspect.signature(base.forward).parameters:
        return peft_model
    base_prepare = peft_model.base_model_prepare_inputs_for_generation
    peft_prepare = peft_model.prepare_inputs_for_generation

    def prepare_base(*args: Any, **kwargs: Any) -> dict[str, Any]:
        out = base_prepare(*args, **kwargs)
        if out.get("cache") is not None:
            out["past_key_values"] = out.pop("cache")
        return out

    def prepare(*args: Any, **kwargs: Any) -> dict[str, Any]:
        out = peft_prepare(*args, **kwargs)
        if "past_key_values" in out:
            out["cache"] = out.pop("past_key_values")
        return out

    peft_model.base_model_prepare_inputs_for_generation = prepare_base
    peft_model.prepare_inputs_for_generation = prepare
    return peft_model
