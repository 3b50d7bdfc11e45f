"""Serving: one backbone + a prompt bank behind an HTTP API, with mixed-task micro-batching.

Heavy imports (FastAPI, the engine) stay in the submodules: ``clinprompt.serve.engine``,
``clinprompt.serve.app`` (behind the ``gate``), ``clinprompt.serve.server`` (uvicorn, drain on
exit), ``clinprompt.serve.vllm_engine`` (optional, needs vLLM and CUDA).
"""

__all__: list[str] = []
