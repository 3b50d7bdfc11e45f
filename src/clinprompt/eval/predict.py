"""Predictions of a conditioned backbone: option likelihood for classification, greedy text otherwise.

Classification records (the task type's ``candidates()`` is not None: NLI labels, multiple-choice
keys, yes/no/maybe) are answered by ranking every candidate's log-likelihood (its text + EOS,
exactly as training saw targets) in one forward pass per batch; the others by batched greedy
decoding. Both reuse the task prompt's keys/values (:class:`PromptKVCache`), computed once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from clinprompt.backbone import Backbone
from clinprompt.data.collate import encode_prompt
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.decoding import (
    PromptKVCache,
    encode_options,
    greedy_generate,
    option_logprobs,
)
from clinprompt.eval.artifact import Artifact
from clinprompt.tasks.base import get_task_type

__all__ = ["conditioned", "generation_budget", "predict"]


@contextlib.contextmanager
def conditioned(backbone: Backbone, artifact: Artifact) -> Iterator[Any]:
    """The model to run: the backbone, or the backbone with a LoRA adapter (removed afterwards)."""
    if artifact.kind != "lora":
        yield backbone.model
        return
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(backbone.model, str(artifact.lora_dir))
    try:
        yield peft_model.get_base_model().eval()
    finally:
        peft_model.unload()  # the backbone is unchanged for the next evaluation


def generation_budget(spec: DatasetSpec, pool: Records, tokenizer: Any, cap: int) -> int:
    """Tokens to generate: 1.5x the longest target of the training ``pool`` (+4), at most ``cap``.

    Measured on training records only; an untrained prompt that never emits EOS then costs
    what a trained one needs, not the full ``cap``.
    """
    task = get_task_type(spec.task_type)
    lengths = (
        len(tokenizer(" " + task.format_target(r, spec), add_special_tokens=False)["input_ids"])
        for r in pool
    )
    return max(4, min(cap, int(1.5 * max(lengths, default=cap)) + 4))


def predict(
    backbone: Backbone,
    artifact: Artifact,
    spec: DatasetSpec,
    records: Records,
    max_input_tokens: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    generate: bool = False,
) -> list[tuple[str, str]]:
    """Per record: (raw answer text, how it was obtained: ``options`` or ``generate``).

    Args:
        backbone: the frozen backbone.
        artifact: its conditioning (a prompt, a LoRA adapter, or nothing).
        spec: the dataset (formatting, candidates).
        records: the records to answer.
        max_input_tokens: input tokens kept per record (as in training).
        max_new_tokens: generation budget (default: the task type's ``max_new_tokens``).
        batch_size: records per forward pass (option scoring: rows = records x candidates).
        generate: generate even where the task type has candidates.
    """
    task, tok = get_task_type(spec.task_type), backbone.tokenizer
    inputs = [encode_prompt(tok, task.example(r, spec), max_input_tokens) for r in records]
    cands = [None if generate else task.candidates(r, spec) for r in records]
    prompt = (
        None if artifact.prompt is None else artifact.prompt.to(backbone.device, backbone.dtype)
    )
    cache = PromptKVCache(backbone.model) if prompt is not None else None
    key = f"{artifact.path}:{artifact.task}"
    if cache is not None and records:
        # Every row starts with the same instruction: cache its keys/values with the prompt.
        head = task.example(records[0], spec).prompt_head
        cache.set_prefix(key, tok(head, add_special_tokens=False)["input_ids"])
    budget = max_new_tokens or task.max_new_tokens
    out: list[tuple[str, str]] = [("", "")] * len(records)
    # Longest first, so each batch pads little and a too-long batch fails early.
    order = sorted(range(len(records)), key=lambda i: -len(inputs[i]))
    scored = [i for i in order if cands[i]]
    generated = [i for i in order if not cands[i]]

    def batch_prompts(n: int) -> Any:
        return None if prompt is None else prompt.unsqueeze(0).expand(n, -1, -1)  # (B, P, D)

    with conditioned(backbone, artifact) as model:
        per_batch = max(1, batch_size // max((len(cands[i]) for i in scored), default=1))
        for start in range(0, len(scored), per_batch):
            idx = scored[start : start + per_batch]
            scores = option_logprobs(
                model,
                batch_prompts(len(idx)),
                [inputs[i] for i in idx],
                [encode_options(tok, cands[i]) for i in idx],
                prompt_cache=cache,
                task_keys=[key] * len(idx) if cache else None,
                pad_token_id=tok.pad_token_id,
            )
            for i, s in zip(idx, scores, strict=True):
                out[i] = (cands[i][max(range(len(s)), key=s.__getitem__)], "options")
        for start in range(0, len(generated), batch_size):
            idx = generated[start : start + batch_size]
            ids = greedy_generate(
                model,
                batch_prompts(len(idx)),
                [inputs[i] for i in idx],
                budget,
                tok.eos_token_id,
                tok.pad_token_id,
                prompt_cache=cache,
                task_keys=[key] * len(idx) if cache else None,
            )
            for i, g in zip(idx, ids, strict=True):
                out[i] = (tok.decode(g, skip_special_tokens=True).strip(), "generate")
    return out
