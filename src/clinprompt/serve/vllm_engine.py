"""Scale-out engine: vLLM generates from ``prompt_embeds`` (task prompt ⊕ token embeddings).

vLLM (>= 0.10, ``enable_prompt_embeds=True``) accepts a (T, D) embedding tensor per request in
place of token ids, so any soft prompt can be served by vLLM's continuous batching and paged KV
cache without patching vLLM: each request is sent as ``prompt (P, D) ⊕ embed(encode_prompt ids)``,
exactly the sequence the HF engine runs (positions 0..P+T-1, no padding). Admission, limits,
parsing and the HTTP API are the HF engine's; option scoring is not offered (candidates are
answered by generation and parsing). vLLM is imported lazily: this module loads without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from clinprompt.backbone import BUILTIN_BACKBONES, Backbone, cache_root
from clinprompt.decoding import PromptKVCache
from clinprompt.serve.admission import Admission, WorkItem
from clinprompt.serve.engine import EngineArgs, Limits, ServeEngine
from clinprompt.serve.scheduler import Scheduler

__all__ = ["VllmScheduler", "VllmServeEngine", "vllm_available"]


def vllm_available() -> bool:
    """True where vLLM imports and CUDA is present."""
    if not torch.cuda.is_available():
        return False
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def _model_dir(name: str) -> str:
    """The directory (or hub id) vLLM should load for a backbone name."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in BUILTIN_BACKBONES:  # load_backbone converted it to a plain HF directory
        return str(cache_root() / "backbones" / name)
    return name


class VllmScheduler(Scheduler):
    """A :class:`Scheduler` that hands whole micro-batches to vLLM, which batches continuously."""

    def __init__(
        self,
        llm: Any,
        backbone: Backbone,
        prompt_cache: PromptKVCache,
        admission: Admission,
        **options: Any,
    ) -> None:
        super().__init__(backbone, prompt_cache, admission, **options)
        self.llm = llm  # a vllm.LLM

    def calibrate(self, tokens: int = 32, steps: int = 3) -> None:
        """No estimate of waits: the HF backbone here is not what generates (max_queue alone)."""
        return None

    def cycle(self, taken: list[WorkItem]) -> None:
        # vLLM batches continuously itself: hand it whole micro-batches.
        taken += self.admission.take(self.max_batch, wait=True, wait_ms=self.wait_ms)
        if taken:
            self.batches += 1
            self.run_batch(taken)
            taken.clear()

    def generate(self, items: list[WorkItem]) -> list[list[int]]:
        from vllm import SamplingParams

        embed = self.backbone.model.get_input_embeddings()
        eos = self.tokenizer.eos_token_id
        requests, params = [], []
        for it in items:
            ids = torch.tensor(it.input_ids, device=embed.weight.device)
            x = torch.cat([it.task.prompt.to(embed.weight), embed(ids)])  # (P + T, D)
            requests.append({"prompt_embeds": x.cpu()})
            params.append(
                SamplingParams(temperature=0.0, max_tokens=it.max_new_tokens, stop_token_ids=[eos])
            )
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [[t for t in out.outputs[0].token_ids if t != eos] for out in outputs]


class VllmServeEngine(ServeEngine):
    """A :class:`ServeEngine` whose generation runs in vLLM.

    Args:
        backbone: the HF backbone (on CPU is fine): tokenizer, input embeddings, fingerprint.
        bank_path: the bank directory.
        model: what vLLM loads (HF directory or hub id; a built-in name maps to its cache dir).
        limits, args: as :class:`ServeEngine`.
        **llm_kwargs: passed to ``vllm.LLM`` (e.g. ``gpu_memory_utilization``, ``tensor_parallel_size``).
    """

    supports_scoring = False

    def __init__(
        self,
        backbone: Backbone,
        bank_path: str | Path,
        model: str,
        limits: Limits | None = None,
        args: EngineArgs | None = None,
        **llm_kwargs: Any,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError as err:
            raise ImportError(
                "--engine vllm needs vLLM (pip install 'clinprompt[vllm]') and a CUDA GPU"
            ) from err
        super().__init__(backbone, bank_path, limits, args)
        self.llm = LLM(
            model=_model_dir(model),
            enable_prompt_embeds=True,
            **{"dtype": "bfloat16", **llm_kwargs},
        )
        self.scheduler = VllmScheduler(
            self.llm, backbone, self.prompt_cache, self.admission, **self.args.scheduling()
        )
