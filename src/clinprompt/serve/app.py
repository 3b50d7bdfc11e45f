"""The HTTP API (FastAPI) over a :class:`ServeEngine`.

Routes: ``POST /v1/predict``, ``GET /v1/tasks``, ``POST /v1/admin/reload``, ``GET /healthz``
(``/docs`` and ``/openapi.json`` come from FastAPI). Every error is JSON:
``{"error": {"code", "message", "limit"?, "value"?}}``. With an API key every route but
``/healthz`` needs ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clinprompt.prompts.bank import BankError
from clinprompt.serve.engine import ServeEngine, ServeError
from clinprompt.serve.schema import (
    ErrorResponse,
    HealthResponse,
    PredictRequest,
    PredictResponse,
    ReloadResponse,
    TasksResponse,
)

__all__ = ["create_app"]

log = logging.getLogger("clinprompt.serve")
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 413, 422, 429, 503)
}


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def create_app(engine: ServeEngine, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving ``engine``; its worker starts and stops with the app.

    Args:
        engine: a loaded engine (started here when it is not running yet).
        api_key: when set, requests need ``Authorization: Bearer <api_key>`` (401 otherwise).
    """

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
    bearer = HTTPBearer(auto_error=False)

    def authorize(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if api_key is None:
            return
        if creds is None or not hmac.compare_digest(creds.credentials.encode(), api_key.encode()):
            raise ServeError(
                401, "unauthorized", "missing or wrong API key; send 'Authorization: Bearer <key>'"
            )

    @app.exception_handler(ServeError)
    async def _serve_error(_: Request, err: ServeError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.to_dict(), status_code=err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = [
            f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in err.errors()
        ]
        body = ServeError(
            422, "invalid_request", "invalid request: " + "; ".join(problems), problems=problems
        )
        return JSONResponse(body.to_dict(), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(
            ServeError(500, "internal_error", f"internal error: {err!r}").to_dict(), status_code=500
        )

    @app.get("/healthz", response_model=HealthResponse)
    async def healthz() -> dict[str, Any]:
        """Liveness and queue depth (no authentication)."""
        return engine.health()

    @app.get(
        "/v1/tasks",
        response_model=TasksResponse,
        responses=_ERRORS,
        dependencies=[Depends(authorize)],
    )
    async def tasks() -> dict[str, Any]:
        """The servable tasks, their labels and input fields."""
        table = engine.table
        return {
            "backbone": engine.backbone.fingerprint.to_dict(),
            "prompt_tokens": table.prompt_tokens,
            "bank_version": table.version,
            "tasks": [rt.describe() for rt in table.tasks.values()],
        }

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=_ERRORS,
        dependencies=[Depends(authorize)],
    )
    async def predict(body: PredictRequest) -> dict[str, Any]:
        """Answer every input of one task (batched with other requests' inputs)."""
        items = engine.prepare(body.task, body.inputs, body.mode, body.max_new_tokens)
        futures = [asyncio.wrap_future(f) for f in engine.submit(items)]
        timeout = engine.limits.request_timeout_s
        try:
            outputs = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except TimeoutError:
            for f in futures:
                f.cancel()
            raise ServeError(
                503,
                "timeout",
                f"the request was not answered within request_timeout_s={timeout:g} s; the server is busy, retry later",
                limit="request_timeout_s",
                value=timeout,
            ) from None
        return {"task": body.task, "task_type": items[0].task.entry.task_type, "outputs": outputs}

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadResponse,
        responses=_ERRORS,
        dependencies=[Depends(authorize)],
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
