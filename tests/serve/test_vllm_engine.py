"""The vLLM engine's wiring without vLLM: a stand-in ``vllm`` module decodes the ``prompt_embeds``
it is sent greedily with the HF model, so the answers must equal the HF engine's (the real vLLM
comparison, ``test_vllm.py``, needs CUDA and vLLM)."""

from __future__ import annotations

import sys
import types

import torch

from clinprompt.serve.engine import EngineArgs, ServeEngine
from clinprompt.serve.vllm_engine import VllmScheduler, VllmServeEngine


def _fake_vllm(model) -> types.ModuleType:
    """``LLM.generate`` decodes each (T, D) ``prompt_embeds`` greedily, positions 0..T-1."""

    class SamplingParams:
        def __init__(self, temperature: float, max_tokens: int, stop_token_ids: list[int]):
            assert temperature == 0.0
            self.max_tokens, self.stop = max_tokens, stop_token_ids

    class LLM:
        def __init__(self, **kwargs) -> None:
            assert kwargs["enable_prompt_embeds"] is True
            self.calls: list[int] = []

        @torch.no_grad()
        def generate(self, requests, params, use_tqdm=False):
            self.calls.append(len(requests))
            embed = model.get_input_embeddings()
            outputs = []
            for request, p in zip(requests, params, strict=True):
                x, ids = request["prompt_embeds"].unsqueeze(0), []  # (1, T, D)
                while len(ids) < p.max_tokens:
                    tok = int(model(inputs_embeds=x).logits[0, -1].argmax())
                    ids.append(tok)
                    if tok in p.stop:
                        break
                    x = torch.cat([x, embed(torch.tensor([[tok]]))], dim=1)
                outputs.append(
                    types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=ids)])
                )
            return outputs

    return types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams)


def test_vllm_engine_answers_as_the_hf_engine(lively, bank, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(lively.model))
    args = EngineArgs(max_batch=4, wait_ms=50)
    engine = VllmServeEngine(lively, bank.path, "tiny-llama", args=args)
    reference = ServeEngine(lively, bank.path, args=args)
    inputs = [{"text": "Aspirin 81 mg daily."}, {"text": "Hb 9.8."}, {"text": "BP 120/80."}]
    try:
        assert isinstance(engine.scheduler, VllmScheduler)
        got = engine.predict("notes", inputs, max_new_tokens=6)
        triage = engine.predict("triage", inputs[:1], max_new_tokens=3)
        expected = reference.predict("notes", inputs, max_new_tokens=6)
    finally:
        engine.stop()
        reference.stop()
    assert [o["generation"] for o in got] == [o["generation"] for o in expected]
    assert engine.scheduler.llm.calls[0] == 3  # one micro-batch for the request's inputs
    assert triage[0]["mode"] == "generate" and triage[0]["scores"] is None  # no option scoring
    assert engine.health()["batches"] == 2 and engine.health()["requests"] == 2
