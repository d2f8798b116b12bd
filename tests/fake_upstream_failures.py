"""Failures switched on and off at run time, per model name, and the per-model call counter.

``fake.fail("gpt-4o-mini", 429, times=2, retry_after=3)`` makes the next two authorised, well-formed requests naming
that model (the upstream ``model``, or the Azure deployment) answer 429 in the dialect's own error envelope;
``times=None`` keeps failing until ``fake.heal(model)``. The Files and Batches routes are switched by their exact path
instead (``fake.fail("/v1/batches", 503)``). Modes besides a status: ``"reset"`` drops the connection with a TCP reset
and no answer, ``"hang"`` never answers (the handler waits until the client gives up or the fake stops),
``"midstream"`` sends the first chunk of a stream then drops the connection (half the JSON body of a non-streaming
answer). ``retry_after`` sets the ``retry-after`` header: a number of seconds, a ``datetime`` (written as an
HTTP-date) or a string sent verbatim; ``retry_after_ms`` sets OpenAI's ``retry-after-ms``. Every request naming a
model (or path) is counted, refused or not: ``fake.calls(model)``. Out of process: ``POST /_fake/failures`` with the
same fields as JSON, ``DELETE /_fake/failures`` (optionally ``?model=``), ``GET /_fake/calls``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import orjson
from aiohttp import web

from tests.fake_upstream_dialects import JSON, Dialect

RESET, HANG, MIDSTREAM = "reset", "hang", "midstream"
MODES = (RESET, HANG, MIDSTREAM)
RetryAfter = float | int | str | datetime | None


@dataclass(slots=True)
class Failure:
    """One switched failure: a status or a mode, how many more requests it takes (None: until healed)."""

    mode: int | str
    remaining: int | None = None
    retry_after: RetryAfter = None
    retry_after_ms: int | None = None

    def headers(self) -> dict[str, str]:
        """The ``retry-after`` and ``retry-after-ms`` headers this failure adds."""
        headers: dict[str, str] = {}
        if isinstance(self.retry_after, datetime):
            headers["retry-after"] = format_datetime(self.retry_after, usegmt=True)
        elif isinstance(self.retry_after, str):
            headers["retry-after"] = self.retry_after
        elif self.retry_after is not None:
            seconds = float(self.retry_after)
            headers["retry-after"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = str(self.retry_after_ms)
        return headers

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for ``GET /_fake/failures``."""
        return {"mode": self.mode, "times": self.remaining, **self.headers()}


def _checked_mode(mode: int | str) -> int | str:
    if isinstance(mode, int) and not isinstance(mode, bool) and 400 <= mode <= 599:
        return mode
    if mode in MODES:
        return mode
    raise ValueError(f"unknown failure mode {mode!r}: an HTTP status 400-599 or one of {', '.join(MODES)}")


class FailureBook:
    """The switched failures by model name, the calls counted per model, and the requests left hanging."""

    def __init__(self) -> None:
        self.failures: dict[str, Failure] = {}
        self.counts: Counter[str] = Counter()
        self._released = asyncio.Event()

    def fail(
        self,
        model: str,
        mode: int | str,
        *,
        times: int | None = None,
        retry_after: RetryAfter = None,
        retry_after_ms: int | None = None,
    ) -> None:
        """Make the next ``times`` requests for ``model`` (every one, when None) fail with ``mode``."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every request until healed")
        self.failures[model] = Failure(_checked_mode(mode), times, retry_after, retry_after_ms)

    def heal(self, model: str | None = None) -> None:
        """Stop failing ``model`` (every model, when None)."""
        if model is None:
            self.failures.clear()
        else:
            self.failures.pop(model, None)

    def count(self, model: str) -> None:
        """Count a request for ``model`` (a model or deployment name, or a path) that reached the fake."""
        self.counts[model] += 1

    def take(self, model: str) -> Failure | None:
        """The failure a well-formed request for ``model`` meets, if any (using up one of its turns)."""
        failure = self.failures.get(model)
        if failure is not None and failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining == 0:
                del self.failures[model]
        return failure

    def calls(self, model: str) -> int:
        """How many requests for ``model`` reached the fake since the last reset."""
        return self.counts[model]

    def reset(self) -> None:
        """Forget the call counts (switched failures stay until healed)."""
        self.counts.clear()

    def release(self) -> None:
        """Let every hanging request go (the fake is stopping); later hangs wait again."""
        self._released.set()
        self._released = asyncio.Event()

    async def inflict(self, request: web.Request, failure: Failure, dialect: Dialect, model: str) -> web.Response:
        """Answer a request as a status, reset or hang failure."""
        if failure.mode == HANG:
            await self._released.wait()
            failure = Failure(503)
        if failure.mode in (RESET, MIDSTREAM):  # MIDSTREAM here only for answers without a body to cut
            reset_connection(request)
            return web.Response()
        assert isinstance(failure.mode, int)
        response = dialect.error(failure.mode, model)
        response.headers.update(failure.headers())
        return response


def reset_connection(request: web.Request) -> None:
    """Close the connection with a TCP reset (SO_LINGER 0), so the client sees ECONNRESET and no answer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def cut_short(request: web.Request, body: bytes, headers: dict[str, str]) -> web.StreamResponse:
    """A 200 whose JSON body stops half way: the headers promise the whole length, then the connection drops."""
    response = web.StreamResponse(headers=headers)
    response.content_type = JSON
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    reset_connection(request)
    return response


class FailureRoutes:
    """``/_fake/failures`` and ``/_fake/calls``: the failure switches for a fake running as a process."""

    def __init__(self, book: FailureBook) -> None:
        self.book = book

    def register(self, app: web.Application) -> None:
        """Add the routes to the fake's application."""
        app.router.add_post("/_fake/failures", self.switch_on)
        app.router.add_delete("/_fake/failures", self.switch_off)
        app.router.add_get("/_fake/failures", self.listed)
        app.router.add_get("/_fake/calls", self.counted)

    async def switch_on(self, request: web.Request) -> web.Response:
        """``{"model", "mode", "times"?, "retry_after"?, "retry_after_ms"?}``; 400 when it makes no sense."""
        try:
            fields = orjson.loads(await request.read())
            self.book.fail(
                str(fields["model"]),
                fields["mode"],
                times=fields.get("times"),
                retry_after=fields.get("retry_after"),
                retry_after_ms=fields.get("retry_after_ms"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            return _json({"ok": False, "error": str(error)}, 400)
        return _json({"ok": True})

    async def switch_off(self, request: web.Request) -> web.Response:
        """Heal one model (``?model=``) or every model."""
        self.book.heal(request.query.get("model"))
        return _json({"ok": True})

    async def listed(self, _: web.Request) -> web.Response:
        """The failures switched on now."""
        return _json({model: failure.to_dict() for model, failure in self.book.failures.items()})

    async def counted(self, _: web.Request) -> web.Response:
        """Calls per model since the last reset."""
        return _json(dict(self.book.counts))


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON)
