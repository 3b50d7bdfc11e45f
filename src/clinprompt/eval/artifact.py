"""What ``clinprompt evaluate`` can score, resolved into a prompt (or a LoRA adapter) on a backbone.

Accepted artifacts:

* nothing — the bare backbone with the instruction only (zero-shot);
* a prompt bank directory (``bank.json``) and a task name — a single prompt (teacher, PT) or a
  multitask task whose effective prompt is ``P* ⊙ (u v)`` (:meth:`PromptBank.task_prompt`);
* a PEFT adapter directory (``adapter_config.json``): ``LORA`` (applied to the backbone while
  evaluating, removed afterwards) or ``PROMPT_TUNING`` (its soft prompt);
* a ``.safetensors`` file holding one (P, D) tensor (``prompt`` or the only tensor).

What an artifact was trained for is its task spec, read one way: from the bank entry
(:attr:`TaskEntry.spec`), or from the task entry a PEFT adapter's ``clinprompt_task.json`` holds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clinprompt.artifacts import load_tensors, read_json
from clinprompt.backbone import Backbone, Fingerprint
from clinprompt.data.spec import DatasetSpec
from clinprompt.params import prompt_parameter_count
from clinprompt.tasks.spec import TaskSpec, TaskSpecError

__all__ = ["Artifact", "EvalError", "resolve_artifact"]


class EvalError(ValueError):
    """An evaluation that cannot run: wrong artifact, task, dataset or split."""


@dataclass
class Artifact:
    """A resolved artifact: how to condition the backbone for one task."""

    kind: str  # backbone | bank | peft-prompt | prompt-file | lora
    method: str  # zeroshot | pt | mpt | lora | teacher ... (the report's column)
    path: str | None = None
    task: str | None = None
    prompt: torch.Tensor | None = None  # (P, D) fp32
    lora_dir: Path | None = None
    spec: TaskSpec | None = None  # the task it was trained for, when recorded
    trainable_params: int = 0
    fingerprint: Fingerprint | None = None

    @property
    def task_type(self) -> str | None:
        """The task type it was trained for, when recorded."""
        return self.spec.task_type if self.spec else None

    @property
    def instruction(self) -> str | None:
        """The instruction it was trained with, when recorded."""
        return self.spec.instruction if self.spec else None

    def describe(self) -> str:
        if self.kind == "backbone":
            return "the bare backbone (instruction only)"
        where = f"{self.path}" + (f" task {self.task!r}" if self.task else "")
        shape = f", prompt {tuple(self.prompt.shape)}" if self.prompt is not None else ""
        return f"{self.kind} {where}{shape}"

    def check_task(self, spec: DatasetSpec) -> None:
        """Refuse an artifact trained for another task type than ``spec``'s."""
        if self.task_type and self.task_type != spec.task_type:
            raise EvalError(
                f"{self.describe()} was trained for a {self.task_type} task, but dataset {spec.name!r} is "
                f"{spec.task_type}; evaluate it on a {self.task_type} dataset or pick the matching artifact"
            )

    def check_backbone(self, spec: DatasetSpec, backbone: Backbone) -> DatasetSpec:
        """Refuse another backbone; return ``spec`` with the instruction the artifact was trained with."""
        if self.fingerprint is not None and not self.fingerprint.matches(backbone.fingerprint):
            raise EvalError(
                f"{self.describe()} was trained on {self.fingerprint.describe()}, but the loaded backbone is "
                f"{backbone.fingerprint.describe()}; pass --backbone {self.fingerprint.name}"
            )
        if self.prompt is not None and self.prompt.shape[-1] != backbone.hidden_size:
            raise EvalError(
                f"{self.describe()} has D={self.prompt.shape[-1]} but the backbone's hidden size is {backbone.hidden_size}"
            )
        if self.instruction and self.instruction != spec.instruction:
            # Score with the text the prompt was trained on.
            return dataclasses.replace(spec, instruction=self.instruction)
        return spec


def _from_bank(path: Path, task: str | None, dataset: str) -> Artifact:
    from clinprompt.prompts.bank import BankError, PromptBank, template_mismatch

    bank = PromptBank.load(path)
    name = task or (
        dataset if dataset in bank.tasks else (bank.names()[0] if len(bank.tasks) == 1 else dataset)
    )
    try:
        entry = bank.entry(name)
        prompt = bank.task_prompt(name)
    except BankError as err:
        raise EvalError(f"{err}; pass --task NAME") from err
    stale = template_mismatch(entry)
    if stale:
        raise EvalError(f"{path}: {stale}")
    trainable = prompt_parameter_count(
        entry.kind, bank.prompt_tokens, bank.dim, bank.rank, own_shared=entry.own_shared
    )
    method = "pt" if entry.kind == "prompt" else "mpt"
    meta = entry.meta or {}
    return Artifact(
        kind="bank",
        method=str(meta.get("method", method)),
        path=str(path),
        task=name,
        prompt=prompt,
        spec=entry.spec,
        trainable_params=int(meta.get("trainable_params", trainable)),
        fingerprint=bank.fingerprint,
    )


def _sidecar_spec(sidecar: dict[str, Any], where: Path) -> TaskSpec | None:
    """The spec of the task entry a sidecar holds (one naming only ``task_type`` and
    ``instruction`` is read as such an entry)."""
    from clinprompt.prompts.bank import BankError, TaskEntry

    entry = sidecar.get("task")
    if not isinstance(entry, dict) and sidecar.get("task_type"):
        entry = {
            "name": where.parent.name,
            "task_type": sidecar["task_type"],
            "kind": "prompt",
            "instruction": sidecar.get("instruction"),
        }
    if not isinstance(entry, dict):
        return None
    try:
        return TaskEntry.from_dict(entry, where=f"{where}: task").spec
    except (BankError, TaskSpecError, KeyError, TypeError) as err:
        raise EvalError(f"{where}: field 'task' is not a task entry: {err}") from err


def _from_peft(path: Path, sidecar_name: str = "clinprompt_task.json") -> Artifact:
    config = read_json(path / "adapter_config.json")
    sidecar = read_json(path / sidecar_name) if (path / sidecar_name).exists() else {}
    peft_type = config.get("peft_type")
    fp = (
        Fingerprint.from_dict(sidecar["backbone"])
        if isinstance(sidecar.get("backbone"), dict)
        else None
    )
    common: dict[str, Any] = dict(
        path=str(path), spec=_sidecar_spec(sidecar, path / sidecar_name), fingerprint=fp
    )
    if peft_type == "LORA":
        weights = path / "adapter_model.safetensors"
        trainable = (
            sum(t.numel() for t in load_tensors(weights).values()) if weights.exists() else 0
        )
        return Artifact(
            kind="lora", method="lora", lora_dir=path, trainable_params=trainable, **common
        )
    if peft_type == "PROMPT_TUNING":
        from clinprompt.prompts.peft_interop import read_peft_prompt

        prompt, _, _ = read_peft_prompt(path)
        return Artifact(
            kind="peft-prompt",
            method=str(sidecar.get("method", "pt")),
            prompt=prompt,
            trainable_params=prompt.numel(),
            **common,
        )
    raise EvalError(
        f"{path / 'adapter_config.json'}: peft_type {peft_type!r} is not supported; expected LORA or PROMPT_TUNING"
    )


def _from_file(path: Path) -> Artifact:
    tensors = load_tensors(path)
    prompt = tensors.get("prompt")
    if prompt is None and len(tensors) == 1:
        prompt = next(iter(tensors.values()))
    if prompt is None or prompt.dim() != 2:
        raise EvalError(
            f"{path}: expected one (P, D) tensor named 'prompt'; found { ({k: tuple(v.shape) for k, v in tensors.items()}) }"
        )
    return Artifact(
        kind="prompt-file",
        method="pt",
        path=str(path),
        prompt=prompt.float(),
        trainable_params=prompt.numel(),
    )


def resolve_artifact(artifact: str | Path | None, task: str | None, dataset: str) -> Artifact:
    """Resolve ``artifact`` (None: the bare backbone) for evaluating ``dataset``.

    Raises:
        EvalError: a path that is none of the accepted artifacts, or a bank without the task.
    """
    if artifact is None:
        return Artifact(kind="backbone", method="zeroshot")
    path = Path(artifact).expanduser()
    if path.is_dir() and (path / "bank.json").exists():
        return _from_bank(path, task, dataset)
    if path.is_dir() and (path / "adapter_config.json").exists():
        return _from_peft(path)
    if path.is_file() and path.suffix == ".safetensors":
        return _from_file(path)
    if not path.exists():
        raise EvalError(f"artifact {path} does not exist")
    raise EvalError(
        f"{path} is not an artifact clinprompt can evaluate; expected a prompt bank directory (bank.json), "
        "a PEFT adapter directory (adapter_config.json, LORA or PROMPT_TUNING) or a .safetensors prompt file"
    )
