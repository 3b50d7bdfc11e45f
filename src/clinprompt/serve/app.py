"""The HTTP API (FastAPI) over a :class:`ServeEngine`.

Routes: ``POST /v1/predict``, ``GET /v1/tasks``, ``POST /v1/admin/reload``, ``GET /healthz``
(``/docs`` and ``/openapi.json`` come from FastAPI). Every error, the framework's 400/404/405/422
included, is JSON: ``{"error": {"code", "message", "limit"?, "value"?}}``. With an API key every
route but ``/healthz`` needs ``Authorization: Bearer <key>`` (the docs too, unless
``public_docs``); the key, the body size and its JSON depth are checked by
:class:`~clinprompt.serve.gate.RequestGate` before the body is read or parsed. Validation and
tokenization run off the event loop, so a large request never stalls ``/healthz``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException

from clinprompt.prompts.bank import BankError
from clinprompt.serve.engine import ServeEngine, ServeError
from clinprompt.serve.gate import RequestGate, error_response
from clinprompt.serve.logs import log_event
from clinprompt.serve.schema import (
    ErrorResponse,
    HealthResponse,
    PredictRequest,
    PredictResponse,
    ReloadResponse,
    TasksResponse,
)

__all__ = ["create_app"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 413, 422, 429, 503)
}
# The codes of the framework's own errors (unknown route, wrong method, unreadable body).
_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}


def _location(loc: tuple[Any, ...]) -> str:
    # ASCII-escaped: a key of the request may hold any text, the message must stay encodable
    parts = [str(p).encode("ascii", "backslashreplace").decode() for p in loc if p != "body"]
    return ".".join(parts) or "body"


def create_app(
    engine: ServeEngine, api_key: str | None = None, public_docs: bool = False
) -> FastAPI:
    """The FastAPI app serving ``engine``; its worker starts and stops with the app.

    Args:
        engine: a loaded engine (started here when it is not running yet).
        api_key: when set, requests need ``Authorization: Bearer <api_key>`` (401 otherwise).
        public_docs: serve ``/docs`` and ``/openapi.json`` without the key.

    Raises:
        ValueError: ``api_key`` is empty (it would lock every client out).
    """
    if api_key is not None and not api_key.strip():
        raise ValueError(
            "the API key is empty: no client could send it; pass a non-empty key, or none to serve without one"
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        started_here = not engine.running
        engine.start()
        yield
        if started_here:
            engine.stop()

    app = FastAPI(
        title="clinprompt",
        summary="One frozen LLM, many clinical NLP tasks through soft prompts.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(
        RequestGate,
        api_key=api_key,
        public_docs=public_docs,
        max_body_bytes=engine.limits.max_body_bytes,
        max_json_depth=engine.limits.max_json_depth,
        draining=lambda: engine.draining,
    )

    # Documents the bearer scheme in the OpenAPI schema; the gate is what checks the key.
    bearer = [Depends(HTTPBearer(auto_error=False))] if api_key is not None else []

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, err: ServeError) -> JSONResponse:
        request.state.error_code = err.code
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [
            f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in err.errors()
        ]
        return await _serve_error(
            request,
            ServeError(
                422, "invalid_request", "invalid request: " + "; ".join(problems), problems=problems
            ),
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, err: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(err.status_code, "http_error")
        message = str(err.detail)
        if err.status_code == 400 and request.url.path == "/v1/predict":
            message = f"the request body could not be parsed as JSON in UTF-8 ({message})"
        served = ServeError(err.status_code, code, message)
        response = await _serve_error(request, served)
        for name, value in (err.headers or {}).items():  # e.g. Allow on a 405
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log_event(
            logging.ERROR,
            "internal_error",
            f"unexpected error on {request.method} {request.url.path}: {err!r}",
            exc_info=err,
            request_id=request_id,
            path=request.url.path,
        )
        return error_response(
            ServeError(
                500,
                "internal_error",
                f"internal error ({type(err).__name__}); request id {request_id}",
            )
        )

    @app.get("/healthz", response_model=HealthResponse)
    async def healthz() -> dict[str, Any]:
        """Liveness, queue depth and in-flight inputs (no authentication); ``draining`` at shutdown."""
        return engine.health()

    @app.get("/v1/tasks", response_model=TasksResponse, responses=_ERRORS, dependencies=bearer)
    async def tasks() -> dict[str, Any]:
        """The servable tasks, their labels and input fields."""
        table = engine.table
        return {
            "backbone": engine.backbone.fingerprint.to_dict(),
            "prompt_tokens": table.prompt_tokens,
            "bank_version": table.version,
            "tasks": [rt.describe() for rt in table.tasks.values()],
        }

    @app.post("/v1/predict", response_model=PredictResponse, responses=_ERRORS, dependencies=bearer)
    async def predict(body: PredictRequest, request: Request) -> dict[str, Any]:
        """Answer every input of one task (batched with other requests' inputs)."""
        request.state.task = body.task
        request.state.inputs = len(body.inputs)
        # characters, then tokens: in a thread, so a large request never stalls the event loop
        items = await asyncio.to_thread(
            engine.prepare, body.task, body.inputs, body.mode, body.max_new_tokens
        )
        futures = [asyncio.wrap_future(f) for f in engine.submit(items)]
        timeout = engine.limits.request_timeout_s
        try:
            outputs = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except TimeoutError:
            for f in futures:
                f.cancel()
            engine.admission.give_up(items)  # the worker stops spending time on them
            raise ServeError(
                503,
                "timeout",
                f"the request was not answered within request_timeout_s={timeout:g} s; the server is busy, retry later",
                limit="request_timeout_s",
                value=timeout,
            ) from None
        return {"task": body.task, "task_type": items[0].task.entry.task_type, "outputs": outputs}

    @app.post(
        "/v1/admin/reload", response_model=ReloadResponse, responses=_ERRORS, dependencies=bearer
    )
    async def reload() -> dict[str, Any]:
        """Re-read the bank: new tasks become available, in-flight requests finish as admitted."""
        try:
            return await asyncio.to_thread(engine.reload)
        except (BankError, ValueError, OSError) as err:
            raise ServeError(
                422,
                "reload_failed",
                f"the bank could not be reloaded (still serving the previous tasks): {err}",
            ) from err

    return app
