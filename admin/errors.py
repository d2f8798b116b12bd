"""The admin app's errors (in the gateway's OpenAI envelope) and the handlers that render every failure with it.

    AuthenticationFailed (core)     401    invalid_request_error  missing_token / invalid_token / invalid_credentials
    Forbidden                       403    permission_error       insufficient_role / csrf_failed / route_not_permitted
    Conflict                        409    invalid_request_error  user_exists
    RateLimited (core)              429    rate_limit_error       login_locked (+ retry-after)
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from core.errors import AuthenticationFailed, MethodNotAllowed, NetraError, NotFound, RateLimited


class Forbidden(NetraError):
    """Signed in, but this role (or this request) may not do that."""

    status = 403
    type = "permission_error"
    default_code = "insufficient_role"


class Conflict(NetraError):
    """The thing to create exists already."""

    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


def unauthenticated(message: str, code: str = "invalid_token") -> AuthenticationFailed:
    """A 401 that tells a client to sign in (again)."""
    return AuthenticationFailed(message, code=code, headers={"www-authenticate": "Bearer"})


def login_locked(retry_after: float) -> RateLimited:
    """Too many failed logins for this account or address."""
    return RateLimited(
        "Too many failed sign-in attempts; try again later.", code="login_locked",
        headers={"retry-after": str(int(retry_after))},
    )


def render(error: NetraError) -> Response:
    """The error as a response with its status and headers."""
    return Response(error.body(), status_code=error.status_code, media_type="application/json", headers=error.headers)


async def netra_error(request: Request, exc: Exception) -> Response:
    """Any NetraError raised by a handler."""
    assert isinstance(exc, NetraError)
    return render(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) in the same envelope; the path is not echoed back."""
    assert isinstance(exc, HTTPException)
    error: NetraError
    if exc.status_code == 405:
        error = MethodNotAllowed("Method not allowed.", headers=dict(exc.headers or {}))
    elif exc.status_code == 404:
        error = NotFound("Not found.")
    else:
        error = NetraError("The request could not be served.", status=exc.status_code, code="http_error")
    return render(error)


async def server_error(request: Request, exc: Exception) -> Response:
    """A bug: the client gets the envelope, never a traceback (Starlette re-raises it for the server to log)."""
    return render(NetraError("The server failed to handle the request."))
