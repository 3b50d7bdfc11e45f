"""The server process: uvicorn, with a drain before it stops.

On SIGTERM or SIGINT, :class:`DrainingServer` does not stop at once (uvicorn would close its
socket, so probes would get refused connections, and wait for every in-flight request up to
its timeout). It first drains the engine for up to ``drain_timeout_s``: new work is refused with
503 ``shutting_down``, ``/healthz`` answers ``"status": "draining"``, admitted inputs finish or
are cut (503) at the timeout. Then uvicorn stops as usual. A second signal stops it at once.
"""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

import uvicorn

from clinprompt.serve.engine import ServeEngine
from clinprompt.serve.logs import configure_logging

__all__ = ["DrainingServer", "run_server"]


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first exit signal drains ``engine`` before it stops.

    Args:
        config: the uvicorn configuration.
        engine: the engine behind the app.
        drain_timeout_s: how long in-flight inputs may run once the drain begins.
    """

    def __init__(self, config: uvicorn.Config, engine: ServeEngine, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.engine = engine
        self.drain_timeout_s = drain_timeout_s
        self.drain_requested = False
        self._drain: asyncio.Future[Any] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.drain_requested and not self.should_exit:
            self.drain_requested = True  # on_tick starts the drain (a signal handler only flags)
            self._captured_signals.append(sig)  # re-raised after shutdown, as uvicorn does
            return
        super().handle_exit(sig, frame)  # a second signal: stop now

    async def on_tick(self, counter: int) -> bool:
        if self.drain_requested and self._drain is None:
            self._drain = asyncio.ensure_future(
                asyncio.to_thread(self.engine.drain, self.drain_timeout_s)
            )
        if self._drain is not None and self._drain.done():
            self.should_exit = True
        return await super().on_tick(counter)


def run_server(
    app: Any,
    engine: ServeEngine,
    host: str,
    port: int,
    drain_timeout_s: float,
    log_level: str = "info",
) -> None:
    """Serve ``app`` until a signal; drain ``engine`` first (see :class:`DrainingServer`).

    The server's own records are JSON lines on stderr (:mod:`clinprompt.serve.logs`); uvicorn's
    access log is off, every request is logged by the gate instead.
    """
    configure_logging(log_level)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,  # after the drain, answers in flight are only being sent
    )
    DrainingServer(config, engine, drain_timeout_s).run()
