"""The gateway's exception handlers: every error leaves as the OpenAI envelope."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from core.errors import MethodNotAllowed, NetraError, NotFound
from gateway.calls import record_error
from gateway.context import CallContext
from gateway.responses import BytesResponse


def render(error: NetraError) -> Response:
    """The error as an HTTP response with its status and headers."""
    return Response(error.body(), status_code=error.status_code, media_type="application/json", headers=error.headers)


def error_response(ctx: CallContext, error: NetraError) -> BytesResponse:
    """The error as a raw response for the fast path, noted on the request's context."""
    record_error(ctx, error)
    headers = [(k.encode(), v.encode()) for k, v in error.headers.items()]
    return BytesResponse(error.body(), headers, error.status_code)


async def netra_error(request: Request, exc: Exception) -> Response:
    """Any NetraError raised by a handler."""
    assert isinstance(exc, NetraError)
    ctx: CallContext | None = request.scope.get("netra.ctx")
    if ctx is not None:
        record_error(ctx, exc)
    return render(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) in the same envelope."""
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    error: NetraError
    if exc.status_code == 405:
        error = MethodNotAllowed(f"Method not allowed: {where}.", headers=dict(exc.headers or {}))
    elif exc.status_code == 404:
        error = NotFound(f"Unknown request URL: {where}.{_missing_v1_hint(request)}")
    else:
        error = NetraError(str(exc.detail), status=exc.status_code, code="http_error")
    return await netra_error(request, error)


def _missing_v1_hint(request: Request) -> str:
    """For a path that exists under /v1 (a base URL without it), how to fix the base URL; else nothing."""
    path: str = request.scope["path"]
    if path == "/v1" or path.startswith("/v1/"):
        return ""
    scope = {"type": "http", "path": f"/v1{path}", "method": request.method}
    if not any(route.matches(scope)[0] is not Match.NONE for route in request.app.router.routes):
        return ""
    # The address this connection reached, never the client's Host header (which would be reflected).
    host, port = request.scope.get("server") or ("localhost", 8080)
    host = f"[{host}]" if ":" in host else host
    return f" The OpenAI endpoints are under /v1: set the base URL to http://{host}:{port}/v1 (ending in /v1)."
