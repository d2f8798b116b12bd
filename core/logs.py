"""Structured JSON logs: one object per line, never a prompt, a completion or a secret."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from core.errors import sanitise

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; `extra` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as compact JSON."""
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": sanitise(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                data[key] = value
        if record.exc_info:
            data["exc"] = sanitise(self.formatException(record.exc_info))
        return orjson.dumps(data, default=str).decode()


def configure_logging(level: str) -> None:
    """Route every logger (uvicorn's too) through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Netra writes its own access line per request, with the request id and tenant.
    logging.getLogger("uvicorn.access").disabled = True
