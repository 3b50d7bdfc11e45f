"""Predictions of a conditioned backbone: option likelihood for classification, greedy text otherwise.

The model answers *units* (:meth:`~clinprompt.tasks.base.TaskType.units`): most records are their
own unit; a pair-given RE record has one unit per ordered entity pair, and one with fewer than two
entities has none (answered without the model). The units of every record are answered together
in batches and merged back per record (:meth:`~clinprompt.tasks.base.TaskType.merge`), so metrics
stay on records. Classification units (``candidates()`` is not None: NLI labels,
multiple-choice keys, yes/no/maybe, relation labels) are answered by ranking every candidate's
log-likelihood (its text + EOS, exactly as training saw targets) in one forward pass per batch; the
others by batched greedy decoding. Both reuse the task prompt's keys/values
(:class:`PromptKVCache`), computed once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from clinprompt.tasks.base import Parsed, TaskType, get_task_type

__all__ = [
    "Answer",
    "answer_records",
    "conditioned",
    "generation_budget",
    "merge_unit_answers",
    "predict",
    "unit_option_scores",
]


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

    Measured on the units of training records only (what the model answers); an untrained prompt that never emits EOS then costs
    what a trained one needs, not the full ``cap``.
    """
    task = get_task_type(spec.task_type)
    targets = {task.format_target(u, spec) for r in pool for u in task.units(r, spec)}
    lengths = (
        len(tokenizer(" " + target, add_special_tokens=False)["input_ids"]) for target in targets
    )
    return max(4, min(cap, int(1.5 * max(lengths, default=cap)) + 4))


@dataclass
class Answer:
    """One input record's answer.

    Attributes:
        text: the raw answer (a generation, or the chosen candidate); for a record answered
            through several units (or none), its merged prediction written as the record's target
            (:meth:`~clinprompt.tasks.base.TaskType.format_target`), which ``parse`` reads back.
        via: ``options`` or ``generate``; for a record of several units ``"N units by options"``
            (``"0 units"``: answered without the model).
        parsed: the prediction: the parsed answer, or the units' merged answers (``ok`` False
            when any unit's answer was not understood).
        unit_texts: for a record answered through several units, each unit's raw answer in
            unit order (what the report counts to flag a constant answer); empty otherwise.
    """

    text: str
    via: str
    parsed: Parsed
    unit_texts: list[str] = field(default_factory=list)


def predict(
    backbone: Backbone,
    artifact: Artifact,
    spec: DatasetSpec,
    records: Records,
    max_input_tokens: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    generate: bool = False,
    length_normalize: bool = False,
) -> list[tuple[str, str]]:
    """Per record: (raw answer text, how it was obtained); see :class:`Answer`.

    ``task.parse(text, record, spec)`` gives each record's prediction back (for a record of
    several units, its merged relations; :func:`answer_records` also keeps whether every unit's
    answer was understood). Arguments as :func:`answer_records`.
    """
    return [
        (a.text, a.via)
        for a in answer_records(
            backbone,
            artifact,
            spec,
            records,
            max_input_tokens,
            max_new_tokens,
            batch_size,
            generate,
            length_normalize,
        )
    ]


def answer_records(
    backbone: Backbone,
    artifact: Artifact,
    spec: DatasetSpec,
    records: Records,
    max_input_tokens: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    generate: bool = False,
    length_normalize: bool = False,
) -> list[Answer]:
    """Answer every record: expand to units, answer the units in batches, merge per record.

    Args:
        backbone: the frozen backbone.
        artifact: its conditioning (a prompt, a LoRA adapter, or nothing).
        spec: the dataset (formatting, units, candidates).
        records: the records to answer.
        max_input_tokens: input tokens kept per unit (as in training).
        max_new_tokens: generation budget (default: the task type's ``max_new_tokens``).
        batch_size: units per forward pass (option scoring: rows = units x candidates).
        generate: generate even where the task type has candidates.
        length_normalize: rank candidates by their mean log-probability per token instead of
            the sum (the sum is the answer's probability, which training maximises).
    """
    task = get_task_type(spec.task_type)
    units_of = [task.units(r, spec) for r in records]
    units = [u for us in units_of for u in us]
    raw = _answer_units(
        backbone,
        artifact,
        spec,
        units,
        max_input_tokens,
        max_new_tokens or task.max_new_tokens,
        batch_size,
        generate,
        length_normalize,
    )
    out: list[Answer] = []
    at = 0
    for record, own in zip(records, units_of, strict=True):
        got, at = raw[at : at + len(own)], at + len(own)
        merged = merge_unit_answers(task, spec, record, own, [t for t, _ in got])
        if is_own_unit(record, own):
            text, via = got[0]
            out.append(Answer(text, via, merged))
            continue
        hows = "/".join(sorted({how for _, how in got}))
        via = f"{len(own)} units" + (f" by {hows}" if hows else "")
        out.append(
            Answer(task.format_target(merged.prediction, spec), via, merged, [t for t, _ in got])
        )
    return out


def is_own_unit(record: dict[str, Any], units: Records) -> bool:
    """Whether ``record`` is answered as itself (its only unit is the record)."""
    return len(units) == 1 and units[0] is record


def merge_unit_answers(
    task: TaskType, spec: DatasetSpec, record: dict[str, Any], units: Records, texts: list[str]
) -> Parsed:
    """A record's prediction from its units' raw answers (``units`` as ``task.units`` gives
    them, ``texts`` one per unit): the parsed answer when the record is its own unit, else the
    units' parsed answers merged (:meth:`~clinprompt.tasks.base.TaskType.merge`)."""
    if is_own_unit(record, units):
        return task.parse(texts[0], record, spec)
    parsed = [task.parse(t, u, spec) for t, u in zip(texts, units, strict=True)]
    return task.merge(record, parsed, spec)


def unit_option_scores(
    backbone: Backbone,
    artifact: Artifact,
    spec: DatasetSpec,
    units: Records,
    max_input_tokens: int | None = None,
    batch_size: int = 32,
    length_normalize: bool = False,
) -> list[list[float] | None]:
    """Per unit: the log-likelihood of each of its candidates (``task.candidates``, in order), or
    None for a unit without candidates (answered by generation).

    What option scoring ranks: evaluation answers a unit with its best candidate; a diagnosis
    reads the scores themselves (does the model rank answers by their content, or only by a
    prior the threshold decides?). Units as :meth:`~clinprompt.tasks.base.TaskType.units` gives
    them; other arguments as :func:`answer_records`.
    """
    enc = _EncodedUnits.of(backbone, artifact, spec, units, max_input_tokens, generate=False)
    with conditioned(backbone, artifact) as model:
        scores = enc.score(model, backbone.tokenizer, enc.scored(), batch_size, length_normalize)
    return [scores.get(i) for i in range(len(units))]


def _answer_units(
    backbone: Backbone,
    artifact: Artifact,
    spec: DatasetSpec,
    units: Records,
    max_input_tokens: int | None,
    budget: int,
    batch_size: int,
    generate: bool,
    length_normalize: bool,
) -> list[tuple[str, str]]:
    """Per unit: (raw answer text, ``options`` or ``generate``): its best candidate when it has
    candidates (and ``generate`` is off), else its greedy generation of at most ``budget``
    tokens."""
    tok = backbone.tokenizer
    enc = _EncodedUnits.of(backbone, artifact, spec, units, max_input_tokens, generate)
    with conditioned(backbone, artifact) as model:
        scores = enc.score(model, tok, enc.scored(), batch_size, length_normalize)
        texts = enc.generate(model, tok, enc.generated(), budget, batch_size)
    out: list[tuple[str, str]] = []
    for i, cands in enumerate(enc.cands):
        if cands and i in scores:
            s = scores[i]
            out.append((cands[max(range(len(s)), key=s.__getitem__)], "options"))
        else:
            out.append((texts[i], "generate"))
    return out


@dataclass
class _EncodedUnits:
    """Units tokenised for one artifact: inputs, candidates, its prompt and the prompt's
    keys/values (with the instruction every row starts with), longest first."""

    inputs: list[list[int]]
    cands: list[list[str] | None]
    prompt: Any  # (P, D) on the backbone's device and dtype, or None
    cache: PromptKVCache | None
    key: str
    order: list[int]  # unit indices, longest input first: batches pad little, fail early

    @classmethod
    def of(
        cls,
        backbone: Backbone,
        artifact: Artifact,
        spec: DatasetSpec,
        units: Records,
        max_input_tokens: int | None,
        generate: bool,
    ) -> _EncodedUnits:
        task, tok = get_task_type(spec.task_type), backbone.tokenizer
        inputs = [encode_prompt(tok, task.example(u, spec), max_input_tokens) for u in units]
        cands = [None if generate else task.candidates(u, spec) for u in units]
        prompt = (
            None if artifact.prompt is None else artifact.prompt.to(backbone.device, backbone.dtype)
        )
        cache = PromptKVCache(backbone.model) if prompt is not None else None
        key = f"{artifact.path}:{artifact.task}"
        if cache is not None and units:
            # Every row starts with the same instruction: cache its keys/values with the prompt.
            head = task.example(units[0], spec).prompt_head
            cache.set_prefix(key, tok(head, add_special_tokens=False)["input_ids"])
        order = sorted(range(len(units)), key=lambda i: -len(inputs[i]))
        return cls(inputs, cands, prompt, cache, key, order)

    def scored(self) -> list[int]:
        """Units answered by their candidates, longest first."""
        return [i for i in self.order if self.cands[i]]

    def generated(self) -> list[int]:
        """Units answered by generation, longest first."""
        return [i for i in self.order if not self.cands[i]]

    def _batch(self, n: int) -> tuple[Any, list[str] | None]:
        """The prompts (B, P, D) and cache keys of a batch of ``n`` rows."""
        prompts = None if self.prompt is None else self.prompt.unsqueeze(0).expand(n, -1, -1)
        return prompts, [self.key] * n if self.cache else None

    def score(
        self, model: Any, tok: Any, idx: list[int], batch_size: int, length_normalize: bool
    ) -> dict[int, list[float]]:
        """Each unit of ``idx``: its candidates' log-likelihoods, ``batch_size`` rows a pass."""
        out: dict[int, list[float]] = {}
        per_batch = max(1, batch_size // max((len(self.cands[i] or ()) for i in idx), default=1))
        for start in range(0, len(idx), per_batch):
            part = idx[start : start + per_batch]
            prompts, keys = self._batch(len(part))
            scores = option_logprobs(
                model,
                prompts,
                [self.inputs[i] for i in part],
                [encode_options(tok, self.cands[i]) for i in part],
                length_normalize=length_normalize,
                prompt_cache=self.cache,
                task_keys=keys,
                pad_token_id=tok.pad_token_id,
            )
            out.update(zip(part, scores, strict=True))
        return out

    def generate(
        self, model: Any, tok: Any, idx: list[int], budget: int, batch_size: int
    ) -> dict[int, str]:
        """Each unit of ``idx``: its greedy answer (at most ``budget`` tokens), stripped."""
        out: dict[int, str] = {}
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            prompts, keys = self._batch(len(part))
            ids = greedy_generate(
                model,
                prompts,
                [self.inputs[i] for i in part],
                budget,
                tok.eos_token_id,
                tok.pad_token_id,
                prompt_cache=self.cache,
                task_keys=keys,
            )
            out.update(
                (i, tok.decode(g, skip_special_tokens=True).strip())
                for i, g in zip(part, ids, strict=True)
            )
        return out
