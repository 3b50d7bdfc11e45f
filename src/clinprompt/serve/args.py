"""``ServeArgs``: one server, declared once — each field is a ``clinprompt serve`` option.

:meth:`ServeArgs.limits` and :meth:`ServeArgs.engine_args` map the fields onto the engine's
:class:`~clinprompt.serve.engine.Limits` and :class:`~clinprompt.serve.engine.EngineArgs`. This
module imports neither FastAPI nor torch, so the command line can declare its options quickly.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clinprompt.config.args import arg

if TYPE_CHECKING:
    from clinprompt.serve.engine import EngineArgs, Limits

__all__ = ["API_KEY_ENV", "ServeArgs"]

API_KEY_ENV = "CLINPROMPT_API_KEY"


@dataclass
class ServeArgs:
    """One server: the bank and backbone, the address, the engine, batching and admission limits."""

    bank: Path = arg(
        MISSING,
        "The prompt bank directory to serve, or builtin (the bank shipped with clinprompt).",
    )
    backbone: str | None = arg(
        None, "Backbone name, HF directory or hub id (default: the bank's backbone name)."
    )
    host: str = arg(
        "127.0.0.1", "Address to bind; anything but loopback exposes the server to the network."
    )
    port: int = arg(8000, "Port to bind.")
    api_key: str | None = arg(
        None,
        f"Require 'Authorization: Bearer KEY' (or set ${API_KEY_ENV}).",
        envvar=API_KEY_ENV,
    )
    engine: str = arg(
        "hf",
        "hf: transformers with micro-batching and prompt KV caches; vllm: vLLM with prompt_embeds (CUDA).",
    )
    model_path: str | None = arg(
        None, "vllm only: the HF model directory vLLM loads (default: the backbone's directory)."
    )
    device: str | None = arg(None, "cpu, cuda, cuda:1 (default: CUDA when available).")
    dtype: str = arg(
        "auto",
        "Backbone compute dtype; auto: bf16 on CUDA, on a CPU bf16 only where a cached probe "
        "shows it faster, else fp32 (printed at start-up).",
        ("auto", "fp32", "bf16", "fp16"),
    )
    # ---- batching (EngineArgs)
    max_batch: int = arg(16, "Most inputs run together in one batch.")
    wait_ms: float = arg(10.0, "How long the worker waits to fill a batch.")
    prefill_group: int = arg(
        4,
        "While decoding, prefill waiting inputs once this many are queued (or the batch would fill).",
    )
    max_defer_steps: int = arg(4, "...or after at most this many decode steps.")
    prefill_tokens: int = arg(
        256, "Most input tokens a cycle takes and a forward pass prefills (at least one input)."
    )
    long_pass_every: int = arg(
        16, "While rows decode, a longer job (long input, many options) runs a pass per N steps."
    )
    # ---- admission (Limits), each with the HTTP status it answers beyond
    max_input_tokens: int = arg(1024, "Longest input (tokens, instruction excluded) → 413 beyond.")
    max_inputs: int = arg(32, "Most inputs per request → 422 beyond.")
    max_queue: int = arg(256, "Most inputs waiting → 429 beyond.")
    timeout: float = arg(60.0, "Seconds before a request is answered 503.")
    max_new_tokens: int = arg(512, "The largest max_new_tokens a request may ask for.")
    max_input_chars: int = arg(
        32768, "Longest input in characters (all its strings), counted before tokenizing → 413."
    )
    max_body_bytes: int = arg(
        1_048_576, "Largest request body in bytes, refused before it is read past that → 413."
    )
    max_json_depth: int = arg(32, "Deepest JSON nesting of a request body, before parsing → 422.")
    max_options: int = arg(64, "Most candidate answers of one input (option scoring) → 422.")
    max_option_tokens: int = arg(128, "Longest candidate answer in tokens → 413.")
    max_scoring_tokens: int = arg(
        16_384,
        "Option scoring of one request: tokens fed, each input once plus its candidates → 413.",
    )
    scoring_batch_mb: float = arg(
        256.0,
        "Memory of one option-scoring pass (cache copies and logits); candidates are scored in "
        "chunks that fit.",
    )
    drain_timeout: float = arg(
        15.0,
        "On SIGTERM/SIGINT, seconds in-flight inputs may finish (new work gets 503) before "
        "they are cut.",
    )
    public_docs: bool = arg(False, "Serve /docs and /openapi.json without the API key.")
    watch: float = arg(
        2.0,
        "Poll bank.json every WATCH seconds and reload on change (0: only POST /v1/admin/reload).",
    )
    log_level: str = arg("info", "Log level of the server's JSON lines and of uvicorn.")

    def limits(self) -> Limits:
        """The admission limits of the engine."""
        from clinprompt.serve.engine import Limits

        return Limits(
            max_input_tokens=self.max_input_tokens,
            max_inputs=self.max_inputs,
            max_queue=self.max_queue,
            request_timeout_s=self.timeout,
            max_new_tokens=self.max_new_tokens,
            max_input_chars=self.max_input_chars,
            max_options=self.max_options,
            max_option_tokens=self.max_option_tokens,
            max_scoring_tokens=self.max_scoring_tokens,
            max_body_bytes=self.max_body_bytes,
            max_json_depth=self.max_json_depth,
        )

    def engine_args(self) -> EngineArgs:
        """Batching and bank watching of the engine."""
        from clinprompt.serve.engine import EngineArgs

        return EngineArgs(
            max_batch=self.max_batch,
            wait_ms=self.wait_ms,
            prefill_group=self.prefill_group,
            max_defer_steps=self.max_defer_steps,
            watch_interval_s=self.watch,
            scoring_batch_mb=self.scoring_batch_mb,
            prefill_tokens=self.prefill_tokens,
            long_pass_every=self.long_pass_every,
        )
