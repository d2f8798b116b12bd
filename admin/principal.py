"""Who is calling: the bearer access token checked against the signing key and the user's current record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from starlette.requests import HTTPConnection

from admin.errors import unauthenticated
from admin.session import cookie_token
from admin.state import get_state
from admin.tokens import TokenInvalid, read_access
from core.users import User

MAX_ADDRESS = 64


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in user, as loaded for this request (its role is the current one, not the token's)."""

    user_id: str
    email: str
    role: str


def _bearer(conn: HTTPConnection) -> str:
    header = conn.headers.get("authorization")
    if not header and (token := cookie_token(conn)) is not None:
        return token  # a page request: the access token rides in the httpOnly cookie
    if not header:
        raise unauthenticated("Sign in and send Authorization: Bearer <access token>.", "missing_token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("The Authorization header must be `Bearer <access token>`.")
    return token.strip()


async def authenticate(conn: HTTPConnection) -> Principal:
    """The caller, or a 401: no token, a bad or expired one, or a user since disabled or deleted."""
    state = get_state(conn)
    try:
        claims = read_access(state.signing_key, _bearer(conn), state.clock())
    except TokenInvalid as exc:
        raise unauthenticated("The access token is invalid or expired.") from exc
    async with state.sessions() as session:
        user = await session.get(User, claims.user_id)
    if user is None or user.disabled:
        raise unauthenticated("The access token is invalid or expired.")
    return Principal(user.id, user.email, user.role)


def principal_of(conn: HTTPConnection) -> Principal:
    """The caller the permission guard authenticated (only on routes that need a role)."""
    return cast(Principal, conn.scope["netra.principal"])


def client_address(conn: HTTPConnection) -> str:
    """The client's address as the server saw it (behind a proxy: as uvicorn's proxy headers report it)."""
    return (conn.client.host if conn.client else "unknown")[:MAX_ADDRESS]
