"""The vLLM engine generates what the HF engine generates (CUDA + vLLM only; skipped elsewhere)."""

from __future__ import annotations

import pytest

from clinprompt.serve.vllm_engine import vllm_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not vllm_available(), reason="needs vLLM and a CUDA GPU"),
]


def test_vllm_engine_matches_hf_engine(tmp_path):
    from tests.serve.conftest import make_bank

    from clinprompt.backbone import load_backbone
    from clinprompt.serve.engine import ServeEngine
    from clinprompt.serve.vllm_engine import VllmServeEngine

    cpu = load_backbone("smollm2-135m", device="cpu", dtype="float32")
    make_bank(tmp_path / "bank", cpu)  # random prompts: equality is what matters here
    inputs = [{"text": "Started metformin 500 mg for type 2 diabetes."}, {"text": "BP 120/80."}]
    expected = ServeEngine(cpu, tmp_path / "bank").predict("notes", inputs, max_new_tokens=8)
    engine = VllmServeEngine(
        cpu, tmp_path / "bank", "smollm2-135m", dtype="float32", gpu_memory_utilization=0.3
    )
    got = engine.predict("notes", inputs, max_new_tokens=8)
    engine.stop()
    assert [g["generation"] for g in got] == [e["generation"] for e in expected]
