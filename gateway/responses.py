"""Responses sent as raw ASGI messages: complete JSON bodies, and streams relayed event by event."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from gateway.context import CallContext
from gateway.providers.base import UpstreamStream

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
