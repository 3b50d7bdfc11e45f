"""``clinprompt serve``: one backbone and a prompt bank behind an HTTP API (FastAPI + uvicorn).

Its options are the fields of :class:`~clinprompt.serve.args.ServeArgs` (declared there once).
"""

from __future__ import annotations

import ipaddress

import typer

from clinprompt.cli import app
from clinprompt.config.cli_options import options_from
from clinprompt.serve.args import API_KEY_ENV, ServeArgs

__all__ = ["API_KEY_ENV", "build_server", "serve"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
@options_from(ServeArgs)
def serve(args: ServeArgs) -> None:
    """Serve every task of a prompt bank: POST /v1/predict, GET /v1/tasks, GET /healthz (docs at /docs)."""
    from clinprompt.backbone import BackboneError
    from clinprompt.prompts.bank import BankError
    from clinprompt.serve.server import run_server

    if args.api_key is not None and not args.api_key.strip():
        typer.echo(
            "error: the API key is empty (--api-key or $"
            f"{API_KEY_ENV}): no client could send it; give a key, or none to serve without one",
            err=True,
        )
        raise typer.Exit(1)
    if not _is_loopback(args.host) and args.api_key is None:
        typer.echo(
            f"warning: binding {args.host} without an API key exposes the server to the network; set --api-key or ${API_KEY_ENV}",
            err=True,
        )
    try:
        fastapi_app, engine = build_server(args)
    except (BankError, BackboneError, ValueError, ImportError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    run_server(
        fastapi_app,
        engine=engine,
        host=args.host,
        port=args.port,
        drain_timeout_s=args.drain_timeout,
        log_level=args.log_level,
    )


def build_server(args: ServeArgs):  # -> (FastAPI, ServeEngine)
    """Load the backbone and the bank and build the app (what ``serve`` runs; also for scripts)."""
    import dataclasses

    from clinprompt.backbone import load_backbone
    from clinprompt.prompts.bank import PromptBank
    from clinprompt.prompts.bank_location import resolve_bank
    from clinprompt.serve.app import create_app
    from clinprompt.serve.engine import ServeEngine

    if args.engine not in ("hf", "vllm"):
        raise ValueError(f"--engine must be hf or vllm; got {args.engine!r}")
    args = dataclasses.replace(args, bank=resolve_bank(args.bank))  # `builtin`: the shipped bank
    header = PromptBank.load(args.bank)  # fail early, before loading a backbone
    limits, engine_args = args.limits(), args.engine_args()
    name = args.backbone or header.fingerprint.name
    if args.engine == "vllm":
        from clinprompt.serve.vllm_engine import VllmServeEngine

        # The HF copy only embeds tokens and tokenizes; vLLM holds the weights that generate.
        dtype = "bf16" if args.dtype in (None, "auto") else args.dtype
        bb = load_backbone(name, device="cpu", dtype=dtype)
        eng: ServeEngine = VllmServeEngine(
            bb, args.bank, args.model_path or name, limits, engine_args
        )
    else:
        backbone = load_backbone(name, device=args.device, dtype=args.dtype)
        if backbone.dtype_choice is not None:
            typer.echo(
                f"backbone dtype: {backbone.dtype_choice.name} ({backbone.dtype_choice.reason})",
                err=True,
            )
        eng = ServeEngine(backbone, args.bank, limits, engine_args)
    return create_app(eng, api_key=args.api_key, public_docs=args.public_docs), eng
