"""``clinprompt serve``: one backbone and a prompt bank behind an HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from clinprompt.cli import app

API_KEY_ENV = "CLINPROMPT_API_KEY"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    bank: Path = typer.Option(..., "--bank", help="The prompt bank directory to serve."),
    backbone: str = typer.Option(
        None, help="Backbone name, HF directory or hub id [default: the bank's backbone name]."
    ),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to bind; anything but loopback exposes the server to the network.",
    ),
    port: int = typer.Option(8000, help="Port to bind."),
    api_key: str = typer.Option(
        None,
        "--api-key",
        envvar=API_KEY_ENV,
        help=f"Require 'Authorization: Bearer KEY' (or set ${API_KEY_ENV}).",
    ),
    engine: str = typer.Option(
        "hf",
        help="hf: transformers with micro-batching and prompt KV caches; vllm: vLLM with prompt_embeds (CUDA).",
    ),
    model_path: str = typer.Option(
        None,
        help="vllm only: the HF model directory vLLM loads [default: the backbone's directory].",
    ),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1 [default: CUDA when available]."),
    dtype: str = typer.Option(
        None, help="float32 | bfloat16 | float16 [default: bf16 on CUDA, fp32 on CPU]."
    ),
    max_batch: int = typer.Option(16, help="Most inputs run together in one batch."),
    wait_ms: float = typer.Option(10.0, help="How long the worker waits to fill a batch."),
    prefill_group: int = typer.Option(
        4,
        help="While decoding, prefill waiting inputs once this many are queued (or the batch would fill).",
    ),
    max_defer_steps: int = typer.Option(4, help="...or after at most this many decode steps."),
    max_input_tokens: int = typer.Option(
        1024, help="Longest input (tokens, instruction excluded) → 413 beyond."
    ),
    max_inputs: int = typer.Option(32, help="Most inputs per request → 422 beyond."),
    max_queue: int = typer.Option(256, help="Most inputs waiting → 429 beyond."),
    timeout: float = typer.Option(60.0, help="Seconds before a request is answered 503."),
    max_new_tokens: int = typer.Option(
        512, help="The largest max_new_tokens a request may ask for."
    ),
    watch: float = typer.Option(
        2.0,
        help="Poll bank.json every WATCH seconds and reload on change (0: only POST /v1/admin/reload).",
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve every task of a prompt bank: POST /v1/predict, GET /v1/tasks, GET /healthz (docs at /docs)."""
    import uvicorn

    from clinprompt.backbone import BackboneError
    from clinprompt.prompts.bank import BankError

    if not _is_loopback(host) and not api_key:
        typer.echo(
            f"warning: binding {host} without an API key exposes the server to the network; set --api-key or ${API_KEY_ENV}",
            err=True,
        )
    try:
        fastapi_app, _ = build_server(
            bank,
            backbone,
            api_key,
            engine,
            model_path,
            device,
            dtype,
            max_batch,
            wait_ms,
            max_input_tokens,
            max_inputs,
            max_queue,
            timeout,
            max_new_tokens,
            watch,
            prefill_group,
            max_defer_steps,
        )
    except (BankError, BackboneError, ValueError, ImportError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    uvicorn.run(fastapi_app, host=host, port=port, log_level=log_level)


def build_server(
    bank: Path,
    backbone: str | None = None,
    api_key: str | None = None,
    engine: str = "hf",
    model_path: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    max_batch: int = 16,
    wait_ms: float = 10.0,
    max_input_tokens: int = 1024,
    max_inputs: int = 32,
    max_queue: int = 256,
    timeout: float = 60.0,
    max_new_tokens: int = 512,
    watch: float = 2.0,
    prefill_group: int = 4,
    max_defer_steps: int = 4,
):  # -> (FastAPI, ServeEngine)
    """Load the backbone and the bank and build the app (what ``serve`` runs; also for scripts)."""
    from clinprompt.backbone import load_backbone
    from clinprompt.prompts.bank import PromptBank
    from clinprompt.serve.app import create_app
    from clinprompt.serve.engine import EngineArgs, Limits, ServeEngine

    if engine not in ("hf", "vllm"):
        raise ValueError(f"--engine must be hf or vllm; got {engine!r}")
    header = PromptBank.load(bank)  # fail early, before loading a backbone
    limits = Limits(max_input_tokens, max_inputs, max_queue, timeout, max_new_tokens)
    args = EngineArgs(
        max_batch=max_batch,
        wait_ms=wait_ms,
        prefill_group=prefill_group,
        max_defer_steps=max_defer_steps,
        watch_interval_s=watch,
    )
    name = backbone or header.fingerprint.name
    if engine == "vllm":
        from clinprompt.serve.vllm_engine import VllmServeEngine

        # The HF copy only embeds tokens and tokenizes; vLLM holds the weights that generate.
        bb = load_backbone(name, device="cpu", dtype=dtype or "bfloat16")
        eng: ServeEngine = VllmServeEngine(bb, bank, model_path or name, limits, args)
    else:
        eng = ServeEngine(load_backbone(name, device=device, dtype=dtype), bank, limits, args)
    return create_app(eng, api_key=api_key), eng
