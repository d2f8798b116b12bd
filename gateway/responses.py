"""Responses sent as raw ASGI messages: complete JSON bodies, and streams relayed event by event."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.types import Receive, Scope, Send

from gateway.context import CallContext
from gateway.flight import FlightClosed, Subscription
from gateway.providers.base import UpstreamStream, error_event, stream_ended_early

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class BytesResponse:
    """A complete body with its headers, sent in two ASGI messages (no Response object machinery)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]], status: int = 200) -> None:
        self.body = body
        self.status = status
        self.headers = [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the response."""
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class SSEResponse:
    """An ASGI response that relays an upstream stream; the middleware cancels it when the client disconnects."""

    def __init__(self, stream: UpstreamStream, ctx: CallContext, headers: list[tuple[bytes, bytes]]) -> None:
        self.stream = stream
        self.ctx = ctx
        self.headers = _SSE_HEADERS + headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send headers, then every event as it arrives; however it ends, the upstream call is closed."""
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            await self._relay(send)
        finally:
            # Also on cancellation (the client left): closing the stream cancels the upstream call.
            await self.stream.aclose()
            self.ctx.completion_chars = self.stream.completion_chars
            self.ctx.usage = self.stream.usage
            self.ctx.error_code = self.ctx.error_code or getattr(self.stream, "error_code", "")

    async def _relay(self, send: Send) -> None:
        async for data in self.stream.events():
            self.ctx.mark_first_byte()
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class EventsResponse:
    """A stream whose events are all known already (a cache hit replayed as SSE)."""

    __slots__ = ("ctx", "events", "headers")

    def __init__(self, events: Sequence[bytes], ctx: CallContext, headers: list[tuple[bytes, bytes]]) -> None:
        self.events = events
        self.ctx = ctx
        self.headers = _SSE_HEADERS + headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send headers, then the events."""
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        self.ctx.mark_first_byte()
        for data in self.events:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class FlightResponse:
    """Relays one subscription to a shared Flight; leaving only detaches it (the flight closes the upstream call).

    `fill`, for the call that stores the answer, is awaited (never cancelled) before the response ends, so a
    client that read its stream to the end finds the answer cached.
    """

    def __init__(
        self, sub: Subscription, ctx: CallContext, headers: list[tuple[bytes, bytes]],
        fill: asyncio.Task[None] | None = None,
    ) -> None:
        self.sub = sub
        self.ctx = ctx
        self.headers = _SSE_HEADERS + headers
        self.fill = fill

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send headers, then every event of the flight from its start; however it ends, detach."""
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            await self._relay(send)
            if self.fill is not None:
                await asyncio.wait({self.fill})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.sub.close()
            flight = self.sub.flight
            self.ctx.completion_chars = flight.completion_chars
            self.ctx.usage = flight.usage
            self.ctx.error_code = self.ctx.error_code or flight.error_code

    async def _relay(self, send: Send) -> None:
        try:
            async for data in self.sub:
                self.ctx.mark_first_byte()
                await send({"type": "http.response.body", "body": data, "more_body": True})
        except FlightClosed:
            # Closed under us (shutdown): end the stream with an error event, never silently truncated.
            error = stream_ended_early()
            self.ctx.error_code = error.code
            await send({"type": "http.response.body", "body": error_event(error), "more_body": True})


# What a proxy handler answers with.
ProxyResponse = BytesResponse | SSEResponse | EventsResponse | FlightResponse
