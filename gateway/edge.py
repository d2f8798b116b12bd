"""The gateway's outermost ASGI layer: what every request gets before routing, however it is served.

A path with one trailing slash is served as the path without it (never a redirect: Starlette's would be built
from the client's Host header). A request body the server protocol saw stall (gateway/protocol.py flags it in the
scope) becomes a 408 raised from `receive`, so the handler answers it like any other error and it is accounted for.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import RequestTimeout

# Set in the scope by the server protocol, to the seconds the body stalled for, when the client stops sending it.
BODY_STALLED = "netra.body_stalled"
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


def without_trailing_slash(scope: Scope) -> None:
    """Drop one trailing slash from the scope's path (and raw path); the root path stays as it is."""
    path: str = scope["path"]
    if len(path) > 1 and path[-1] == "/":
        scope["path"] = path[:-1]
        raw: bytes | None = scope.get("raw_path")
        if raw is not None and raw.endswith(b"/"):
            scope["raw_path"] = raw[:-1]


def stall_aware(scope: Scope, receive: Receive) -> Receive:
    """`receive`, raising a 408 once the server has flagged the body as stalled."""

    async def receive_or_timeout() -> Message:
        message = await receive()
        stalled: float | None = scope.get(BODY_STALLED)
        if stalled is not None:
            raise RequestTimeout(
                f"The request body stopped arriving: nothing was received for {stalled:g} seconds.",
                headers={"connection": "close"},
            )
        return message

    return receive_or_timeout


class EdgeMiddleware:
    """Normalises the path and watches for a stalled body, then hands the request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request through the wrapped app."""
        if scope["type"] == "http":
            without_trailing_slash(scope)
            if scope["method"] not in _BODYLESS:
                receive = stall_aware(scope, receive)
        await self.app(scope, receive, send)
