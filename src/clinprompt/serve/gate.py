"""The gate in front of the HTTP app: what is refused before a request body is read or parsed.

:class:`RequestGate` is a pure ASGI middleware. For every HTTP request it, in order:

1. gives the request an id (the client's ``X-Request-ID`` when it is short and plain, else a
   new one), echoed in the ``X-Request-ID`` response header and in the request's log line;
2. checks the API key from the ``Authorization`` header: 401 without reading the body;
3. while the server drains, refuses work (``/v1/predict``, ``/v1/admin/reload``): 503;
4. refuses a ``Content-Length`` over ``max_body_bytes`` (413) before reading, else reads the
   body counting bytes, so a chunked body stops at the limit too (413);
5. measures the body's JSON nesting without parsing it (:func:`json_depth`, linear and in C):
   422 beyond ``max_json_depth``, so the parser never recurses into a hostile body;
6. hands the app the body it read, and logs one structured line per request.

Every refusal is the documented JSON ``{"error": {...}}`` (see :func:`error_response`).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
from starlette.responses import JSONResponse

from clinprompt.serve.admission import ServeError, shutting_down
from clinprompt.serve.logs import log_event

__all__ = [
    "DOCS_PATHS",
    "WORK_PATHS",
    "ErrorJSONResponse",
    "RequestGate",
    "error_response",
    "json_depth",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
WORK_PATHS = frozenset({"/v1/predict", "/v1/admin/reload"})  # refused while draining
OPEN_PATHS = frozenset({"/healthz"})  # no key needed (probes)

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash escape inside a JSON string
_STRING = re.compile(rb'"[^"]*"')  # a JSON string once its escapes are gone
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text, measured without parsing it.

    Escapes and strings are dropped (``re``), the brackets kept (``bytes.translate``) and the
    depth is the maximum of their running sum (numpy): linear time, all in C. For invalid JSON
    the figure is an upper bound of what a parser would reach before it fails.
    """
    if b"[" not in body and b"{" not in body:
        return 0
    text = _STRING.sub(b"", _ESCAPE.sub(b"", body))
    brackets = np.frombuffer(text.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if brackets.size == 0:
        return 0
    opens = (brackets == ord("[")) | (brackets == ord("{"))
    steps = np.where(opens, 1, -1).astype(np.int32)
    return int(np.cumsum(steps, dtype=np.int32).max())


class ErrorJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error that echoes text always encodes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(err: ServeError) -> JSONResponse:
    """The documented ``{"error": {...}}`` body with the status and headers ``err`` calls for."""
    return ErrorJSONResponse(err.to_dict(), status_code=err.status, headers=err.headers())


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def _request_id(scope: Scope) -> str:
    given = _header(scope, b"x-request-id")
    if given is not None:
        text = given.decode("latin-1")
        if _REQUEST_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex[:16]


class RequestGate:
    """Pure ASGI middleware: request id, API key, draining, body size and JSON depth, logs.

    Args:
        app: the ASGI app behind the gate.
        api_key: the key ``Authorization: Bearer`` must carry; None: no authentication.
        public_docs: serve ``/docs`` and ``/openapi.json`` without the key.
        max_body_bytes: the largest request body (413 beyond, before it is read past it).
        max_json_depth: the deepest JSON nesting of a body (422 beyond, before it is parsed).
        draining: returns True once the server refuses new work (503 ``shutting_down``).
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        api_key: str | None,
        public_docs: bool,
        max_body_bytes: int,
        max_json_depth: int,
        draining: Callable[[], bool],
    ) -> None:
        self.app = app
        self._key = api_key.encode() if api_key is not None else None
        self.open_paths = OPEN_PATHS | (DOCS_PATHS if public_docs else frozenset())
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        sent: dict[str, int] = {}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            refusal = self._check_headers(scope)
            body = None
            if refusal is None:
                body, refusal = await self._read_body(scope, receive)
            if refusal is not None:
                state["error_code"] = refusal.code
                await error_response(refusal)(scope, receive, send_with_id)
            elif body is not None:  # None: the client went away while sending it
                state["body_bytes"] = len(body)
                await self.app(scope, _replay(body, receive), send_with_id)
        except Exception:
            sent.setdefault("status", 500)
            raise
        finally:
            self._log(scope, state, sent.get("status"), start)

    def _check_headers(self, scope: Scope) -> ServeError | None:
        """401 without the key, 503 for work while draining, 413 on a declared body too large."""
        path = scope.get("path", "")
        if self._key is not None and path not in self.open_paths:
            auth = _header(scope, b"authorization") or b""
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._key):
                return ServeError(
                    401,
                    "unauthorized",
                    "missing or wrong API key; send 'Authorization: Bearer <key>'",
                )
        if path in WORK_PATHS and self.draining():
            return shutting_down()
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return ServeError(
                    400, "invalid_request", "the Content-Length header is not a number"
                )
            if declared > self.max_body_bytes:
                return self._too_large(declared)
        return None

    def _too_large(self, size: int) -> ServeError:
        return ServeError(
            413,
            "body_too_large",
            f"the request body has {size} bytes or more; the limit max_body_bytes is {self.max_body_bytes}",
            limit="max_body_bytes",
            value=self.max_body_bytes,
        )

    async def _read_body(
        self, scope: Scope, receive: Receive
    ) -> tuple[bytes | None, ServeError | None]:
        """The body, read up to the limit and checked for depth; or the refusal."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:  # a chunked body: stop reading at the limit
                return None, self._too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        opening = body.count(b"[") + body.count(b"{")
        if opening > self.max_json_depth and (depth := json_depth(body)) > self.max_json_depth:
            return None, ServeError(
                422,
                "json_too_deep",
                f"the request body nests {depth} levels deep; the limit max_json_depth is {self.max_json_depth}",
                limit="max_json_depth",
                value=self.max_json_depth,
            )
        return body, None

    @staticmethod
    def _log(scope: Scope, state: dict[str, Any], status: int | None, start: float) -> None:
        path = scope.get("path", "")
        status = status or 499  # no response: the client went away
        # a 500 is a fault; 429 and 503 (busy, draining) are backpressure
        level = logging.INFO
        if status in (429, 503):
            level = logging.WARNING
        elif status >= 500:
            level = logging.ERROR
        if path == "/healthz" and status < 500:
            level = logging.DEBUG  # probes every few seconds would drown the rest
        fields = {
            "request_id": state.get("request_id"),
            "method": scope.get("method"),
            "path": path,
            "status": status,
            "latency_ms": round((time.perf_counter() - start) * 1000, 1),
        }
        for key in ("task", "inputs", "body_bytes"):
            if state.get(key) is not None:
                fields[key] = state[key]
        if state.get("error_code"):
            fields["code"] = state["error_code"]
        log_event(level, "request", f"{scope.get('method')} {path} {status}", **fields)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``body`` once, then waits on the client (disconnects)."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
