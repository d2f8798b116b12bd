"""The gateway's exception handlers: every error leaves as the OpenAI envelope."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

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
        error = NotFound(f"Unknown request URL: {where}.")
    else:
        error = NetraError(str(exc.detail), status=exc.status_code, code="http_error")
    return await netra_error(request, error)
