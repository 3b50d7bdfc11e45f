"""Structured logs of the server: one JSON object per line.

Every record of the ``clinprompt.serve`` logger carries an ``event`` (``request``, ``reload``,
``reload_failed``, ``batch_failed``, ``internal_error``, ``draining``, ``drained``...) and its
fields; :class:`JsonLogFormatter` writes it with a UTC timestamp and the level::

    {"ts": "2025-01-31T12:00:00.123Z", "level": "INFO", "event": "request",
     "message": "POST /v1/predict 200", "request_id": "5f0c...", "method": "POST",
     "path": "/v1/predict", "task": "bc5cdr_ner", "status": 200, "latency_ms": 41.7}
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["LOGGER", "JsonLogFormatter", "configure_logging", "log_event"]

LOGGER = "clinprompt.serve"
log = logging.getLogger(LOGGER)


def log_event(level: int, event: str, message: str, exc_info: Any = None, **fields: Any) -> None:
    """Log ``message`` as ``event`` with ``fields`` (kept apart for the JSON formatter)."""
    log.log(level, message, exc_info=exc_info, extra={"event": event, "fields": fields})


class JsonLogFormatter(logging.Formatter):
    """Formats a record as one line of JSON: ts, level, event, message, the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        if record.name != LOGGER:
            out["logger"] = record.name
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        # ASCII-escaped: a line never fails to encode, whatever text a field holds
        return json.dumps(out, ensure_ascii=True, default=str)


def configure_logging(level: str = "info") -> None:
    """Send the server's records to stderr as JSON lines (once; the level is updated)."""
    log.setLevel(level.upper())
    if not any(isinstance(h.formatter, JsonLogFormatter) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLogFormatter())
        log.addHandler(handler)
    log.propagate = False  # one line per record, whatever the root logger does
