"""Security headers on every response, and the CSRF checks for writes a browser could be tricked into sending."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.errors import Forbidden

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
)
HSTS = "max-age=63072000; includeSubDomains"
CSRF_COOKIE = "netra_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SecurityHeaders:
    """ASGI middleware, outermost, so errors, 404s and server errors carry the headers too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response start of every HTTP request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        over_tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    headers[name] = value
                # Responses carry tokens and private data: no cache keeps them, unless a route chose otherwise.
                headers.setdefault("cache-control", "no-store")
                if over_tls:
                    headers["strict-transport-security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def check_origin(request: Request) -> None:
    """When the browser says where a request comes from, it must be this app's own origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    # Host only, not the scheme: behind a proxy that ends TLS the app may see http while the browser says https.
    if urlsplit(origin).netloc != request.headers.get("host", "") or origin.count("/") != 2:
        raise Forbidden("Cross-origin request refused.", code="csrf_failed")


def check_csrf(request: Request) -> None:
    """A cookie-authenticated write must echo the CSRF cookie in the x-csrf-token header (double submit)."""
    check_origin(request)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), header.encode()):
        raise Forbidden(f"Missing or wrong {CSRF_HEADER} header.", code="csrf_failed")
