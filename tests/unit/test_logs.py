"""Log lines keep the whole story: nothing is cut, so an error's cause survives; credentials still never appear."""

from __future__ import annotations

import logging
import sys

import orjson

from core.logs import JsonFormatter


def _record(msg: str, exc_info: logging._SysExcInfoType | None = None) -> logging.LogRecord:
    return logging.LogRecord("netra.test", logging.ERROR, __file__, 1, msg, (), exc_info)


def test_a_long_traceback_keeps_its_cause_and_its_last_line() -> None:
    cause = "the real reason: " + "x" * 5000 + " END-OF-CAUSE"
    try:
        try:
            raise OSError(cause)
        except OSError as exc:
            raise RuntimeError("start-up failed with key sk-live-abcdef123456") from exc
    except RuntimeError:
        record = _record("gateway did not start", sys.exc_info())
    line = orjson.loads(JsonFormatter().format(record))
    assert "END-OF-CAUSE" in line["exc"]
    assert "direct cause" in line["exc"]
    assert line["exc"].rstrip().endswith("RuntimeError: start-up failed with key [redacted]")


def test_a_long_message_is_not_cut() -> None:
    # Uvicorn logs a failed start-up's traceback as the message itself.
    message = "Traceback (most recent call last):\n" + "  frame\n" * 600 + "core.config.ConfigError: the reason"
    line = orjson.loads(JsonFormatter().format(_record(message)))
    assert line["msg"].endswith("core.config.ConfigError: the reason")
