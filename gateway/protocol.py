"""uvicorn's httptools protocol with the limits a public endpoint needs.

uvicorn alone lets a client hold a connection forever: it bounds neither the size of the request headers nor the
time they and the body take to arrive, and a connection that never sends anything is never closed. Here:

- the request line and headers are at most `max_header_bytes` (431, connection closed);
- the headers must be complete within `client_body_timeout` of the request's first byte (or of the connection
  opening), else the connection is closed, with a 408 if part of a request had arrived; a client that sends no
  part of the body for `client_body_timeout` is answered 408 by the app (gateway/edge.py) unless Netra itself
  is what holds the body back (read paused, `100-continue` not yet sent);
- a connection beyond `max_connections` is answered 503 at once and closed.

An answer written without the app is followed by a lingering close (see Lingerer).

One timer per connection, re-armed only when it fires (at most once per timeout), and no task: a request costs
a few attribute writes.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from core.errors import HeadersTooLarge, NetraError, RequestTimeout, ServiceUnavailable
from gateway.edge import BODY_STALLED

LINGER = 2.0  # seconds a refused connection is read from (and ignored) before it is closed
# Where the current request is: between requests (or nothing sent yet), reading headers, reading the body.
_WAITING, _HEADERS, _BODY = 0, 1, 2


@dataclass(frozen=True)
class ConnectionLimits:
    """What a client connection may take: header bytes, seconds of stall, concurrent connections."""

    max_header_bytes: int = 64 * 1024
    client_body_timeout: float = 30.0
    max_connections: int = 4096


class LimitedConfig(uvicorn.Config):
    """uvicorn's Config carrying the connection limits to every protocol instance (and worker process)."""

    def __init__(self, app: Any, limits: ConnectionLimits, **options: Any) -> None:
        super().__init__(app, http=LimitedHttpToolsProtocol, **options)
        self.limits = limits


def raw_response(error: NetraError) -> bytes:
    """The error as a complete HTTP/1.1 response that closes the connection (written without the app)."""
    body = error.body()
    head = [f"HTTP/1.1 {error.status_code} {http.HTTPStatus(error.status_code).phrase}",
            "content-type: application/json", f"content-length: {len(body)}", "connection: close",
            *(f"{name}: {value}" for name, value in error.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class Lingerer(asyncio.Protocol):
    """Drops what a refused client still sends until it closes (or LINGER seconds pass), then closes.

    Closing a socket with unread input makes the kernel reset the connection, and a client that was still
    sending (its request, or the rest of an oversized header) would then see a reset instead of the answer.
    """

    def __init__(self, transport: asyncio.Transport, connections: set[Any], paused: bool) -> None:
        self.transport = transport
        self.connections = connections  # still counted against the cap, and closed by a server shutdown
        connections.add(self)
        self.timer = asyncio.get_running_loop().call_later(LINGER, transport.close)
        if paused:
            transport.resume_reading()

    def shutdown(self) -> None:
        """The server is shutting down: close now."""
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        """Dropped: the answer has been sent."""

    def eof_received(self) -> None:
        """The client is done: close (returning None lets the transport close itself)."""

    def connection_lost(self, exc: Exception | None) -> None:
        """Gone: stop the timer, stop counting."""
        self.timer.cancel()
        self.connections.discard(self)


class ErrorApp:
    """An ASGI app answering every request with one error and closing the connection."""

    def __init__(self, error: NetraError) -> None:
        self.error = error

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Send the error."""
        body = self.error.body()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), *((k.encode(), v.encode()) for k, v in self.error.headers.items())]
        await send({"type": "http.response.start", "status": self.error.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol bounding header size, header and body stalls, and the number of connections."""

    def __init__(
        self, config: uvicorn.Config, server_state: ServerState, app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, "limits", None) or ConnectionLimits()
        self._phase = _WAITING
        self._since = 0.0  # loop time the connection opened, or the current request began
        self._progress = 0.0  # loop time the body last advanced
        self._header_bytes = 0  # raw bytes received since the last request's headers were complete
        self._chunk_in_body = False  # the chunk being parsed arrived during a body (its bytes were not counted)
        self._counted = True  # every byte of the current request's headers was counted
        self._stalled = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse the connection beyond the cap; otherwise start its clock."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(ServiceUnavailable(
                "The gateway has too many open connections; retry shortly.",
                code="too_many_connections", headers={"retry-after": "1"},
            ))
            return
        self._since = self.loop.time()
        self._timer = self.loop.call_later(self.limits.client_body_timeout, self._on_timer)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, counting header bytes (a header that never ends is refused once it is too long)."""
        self._chunk_in_body = in_body = self._phase == _BODY
        if in_body:
            self._progress = self.loop.time()
        else:
            self._header_bytes += len(data)
        super().data_received(data)
        if (self._phase != _BODY and self._header_bytes > self.limits.max_header_bytes
                and not self.transport.is_closing()):
            self._refuse(self._headers_too_large())

    def on_message_begin(self) -> None:
        """A request begins: its headers are due within the timeout."""
        super().on_message_begin()
        self._phase, self._since, self._stalled = _HEADERS, self.loop.time(), False
        self._counted = not self._chunk_in_body

    def on_headers_complete(self) -> None:
        """Headers in: refuse them if too large, else hand the request to the app; the body clock starts."""
        self._phase, self._progress = _BODY, self.loop.time()
        # The raw count bounds the headers' size from above, unless part of them came with a body chunk.
        if (self._header_bytes > self.limits.max_header_bytes or not self._counted) and self._too_large():
            app, self.app = self.app, ErrorApp(self._headers_too_large())
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        self._header_bytes = 0

    def on_message_complete(self) -> None:
        """The body is in; if the answer went out first, the connection is idle from now."""
        super().on_message_complete()
        self._phase = _WAITING
        if self.cycle.response_complete and self.timeout_keep_alive_task is None and not self.transport.is_closing():
            # uvicorn armed its idle timer when the response ended, and the rest of the body cancelled it.
            idle = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
            self.timeout_keep_alive_task = idle

    def _too_large(self) -> bool:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        return size > self.limits.max_header_bytes

    def _headers_too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(f"The request headers exceed the limit of {self.limits.max_header_bytes} bytes.")

    def _on_timer(self) -> None:
        """The connection's one timer: act on a phase that overran, else look again when it next could."""
        self._timer = None
        if self.transport.is_closing():
            return
        now, timeout = self.loop.time(), self.limits.client_body_timeout
        wait: float | None = timeout  # between requests: a response is under way, or uvicorn's idle timer runs
        if self._phase == _BODY:
            wait = self._check_body(now, timeout)
        elif now - self._since < timeout:
            wait = self._since + timeout - now
        elif self._phase == _HEADERS:
            self._refuse(RequestTimeout(f"The request headers did not arrive within {timeout:g} seconds."))
            return
        elif self.cycle is None:
            self.transport.close()  # connected and never sent a request
            return
        if wait is not None:
            self._timer = self.loop.call_later(wait, self._on_timer)

    def _check_body(self, now: float, timeout: float) -> float | None:
        """How long until the body's clock runs out again; when it has, flag the stall (once) or close."""
        cycle, quiet = self.cycle, now - self._progress
        if not self._stalled and quiet < timeout:
            return timeout - quiet
        if not self._stalled and (self.flow.read_paused or cycle.waiting_for_100_continue):
            return timeout  # the app has not asked for more yet: not the client's stall
        if self._stalled or cycle.response_started:
            self.transport.close()  # answered already, or the app did not answer the stall in time
            return None
        self._stalled = True
        cycle.scope[BODY_STALLED] = timeout  # type: ignore[literal-required]
        cycle.message_event.set()  # wakes the app's receive(), which raises the 408 (gateway/edge.py)
        return timeout

    def _refuse(self, error: NetraError) -> None:
        """Answer with the error and let the connection go (at once if a response is in flight on it)."""
        transport = self.transport
        busy = self.cycle is not None and not self.cycle.response_complete
        flood = len(self.connections) > 2 * self.limits.max_connections  # then no lingering: free the socket now
        if busy or flood or not transport.can_write_eof():
            transport.close()
            return
        transport.write(raw_response(error))
        transport.write_eof()
        # The connection is no longer this protocol's: a lingerer reads what the client still sends.
        self.connections.discard(self)
        self._unset_keepalive_if_required()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport.set_protocol(Lingerer(transport, self.connections, self.flow.read_paused))
