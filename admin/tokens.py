"""Access tokens: short-lived HS256 JWTs carrying the user id (sub), role, iat, exp and a unique jti."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

ALGORITHM = "HS256"
REQUIRED = ("sub", "role", "iat", "exp", "jti")


class TokenInvalid(Exception):
    """The token is malformed, forged, or expired."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: str
    role: str
    jti: str
    expires_at: int


def issue_access(key: bytes, user_id: str, role: str, now: datetime, ttl: timedelta) -> str:
    """A signed access token for the user, valid for `ttl` from `now`."""
    issued = int(now.timestamp())
    claims = {"sub": user_id, "role": role, "iat": issued, "exp": issued + int(ttl.total_seconds()),
              "jti": secrets.token_hex(16)}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_access(key: bytes, token: str, now: datetime) -> AccessClaims:
    """The claims of a token we signed that has not expired, else TokenInvalid."""
    try:
        # Times are checked below against the app's clock (the one tests move), not PyJWT's own.
        claims = jwt.decode(token, key, algorithms=[ALGORITHM],
                            options={"require": list(REQUIRED), "verify_exp": False, "verify_iat": False})
    except jwt.PyJWTError as exc:
        raise TokenInvalid(str(exc)) from exc
    sub, role, jti, exp = (claims.get(name) for name in ("sub", "role", "jti", "exp"))
    if not (isinstance(sub, str) and isinstance(role, str) and isinstance(jti, str) and isinstance(exp, int)):
        raise TokenInvalid("malformed claims")
    if exp <= now.timestamp():
        raise TokenInvalid("expired")
    return AccessClaims(sub, role, jti, exp)
