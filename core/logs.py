"""Structured JSON logs: one object per line, never a prompt, a completion or a secret."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, BinaryIO

import orjson

from core.errors import redact

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; `extra` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as compact JSON."""
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            # Redacted but never shortened: a cut line can lose the cause that explains it.
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                data[key] = value
        if record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
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


class AccessLog:
    """The per-request log line, JSON, buffered in memory and written at most every `interval` seconds.

    A logging.Logger call costs tens of microseconds and a write syscall per request; this costs a few.
    """

    def __init__(self, stream: BinaryIO, interval: float = 0.05, max_buffer: int = 1 << 20) -> None:
        self.stream = stream
        self.interval = interval
        self.max_buffer = max_buffer
        self._buffer = bytearray()
        self._scheduled = False
        self._second = -1
        self._stamp = ""

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def write(self, fields: dict[str, Any]) -> None:
        """Queue one line; the loop writes the buffer soon."""
        line = {"ts": self._timestamp(time.time()), "level": "info", "logger": "netra.access", "msg": "request"}
        line.update(fields)
        self._buffer += orjson.dumps(line, default=str)
        self._buffer += b"\n"
        if len(self._buffer) >= self.max_buffer:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Write out what is buffered."""
        self._scheduled = False
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            try:
                self.stream.write(data)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken log stream must never fail a request
