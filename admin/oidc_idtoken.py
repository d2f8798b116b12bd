"""Verifying an ID token: RS256 with a key the issuer publishes, then iss, aud (and azp), exp, iat and nonce."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt

from admin.oidc_provider import OidcProvider

ALGORITHM = "RS256"
REQUIRED = ("iss", "sub", "aud", "exp", "iat", "nonce")
# Clock skew tolerated between the issuer and us, in seconds.
LEEWAY = 60


class IdTokenInvalid(Exception):
    """The ID token cannot be trusted; the message says why (it names no secret)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the issuer says signed in."""

    subject: str
    email: str | None
    email_verified: bool | None
    claims: dict[str, Any]


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise IdTokenInvalid("it is not a JWT") from exc
    if header.get("alg") != ALGORITHM:
        raise IdTokenInvalid(f"it is not signed with {ALGORITHM}")
    return header


async def _decode(token: str, provider: OidcProvider) -> dict[str, Any]:
    kid = _header(token).get("kid", "")
    key = await provider.signing_key(str(kid))
    if key is None:
        raise IdTokenInvalid("it is signed with a key the issuer does not publish")
    config = provider.config
    try:
        # Times are checked below against the app's clock, not PyJWT's.
        return jwt.decode(token, key, algorithms=[ALGORITHM], audience=config.client_id, issuer=config.issuer,
                          options={"require": list(REQUIRED), "verify_exp": False, "verify_iat": False,
                                   "verify_nbf": False})
    except jwt.InvalidSignatureError as exc:
        raise IdTokenInvalid("its signature does not verify") from exc
    except jwt.InvalidAudienceError as exc:
        raise IdTokenInvalid("it was issued for another client") from exc
    except jwt.InvalidIssuerError as exc:
        raise IdTokenInvalid("it was issued by another issuer") from exc
    except jwt.PyJWTError as exc:
        raise IdTokenInvalid(f"it is malformed ({exc})") from exc


def _time(claims: dict[str, Any], name: str, default: float | None = None) -> float:
    value = claims.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise IdTokenInvalid(f"its {name} is not a number")
    return float(value)


def _check_times(claims: dict[str, Any], now: datetime) -> None:
    exp, iat, nbf = _time(claims, "exp"), _time(claims, "iat"), _time(claims, "nbf", 0)
    moment = now.timestamp()
    if exp <= moment - LEEWAY:
        raise IdTokenInvalid("it has expired")
    if iat > moment + LEEWAY or nbf > moment + LEEWAY:
        raise IdTokenInvalid("it is not valid yet")


def _check_binding(claims: dict[str, Any], nonce: str, client_id: str) -> None:
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise IdTokenInvalid("its nonce is not this sign-in's")
    audience = claims.get("aud")
    # OIDC Core §3.1.3.7: with several audiences, the token must name us as the party it was issued to.
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise IdTokenInvalid("it was issued to another party")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise IdTokenInvalid("it names no subject")


async def verify_id_token(token: str, provider: OidcProvider, nonce: str, now: datetime) -> Identity:
    """The identity in a token the configured issuer signed for us, for this sign-in, now; else IdTokenInvalid."""
    claims = await _decode(token, provider)
    _check_times(claims, now)
    _check_binding(claims, nonce, provider.config.client_id)
    email, verified = claims.get("email"), claims.get("email_verified")
    # Some issuers send the flag as the string "true" or "false".
    flag = verified if isinstance(verified, bool) else {"true": True, "false": False}.get(str(verified).lower())
    return Identity(claims["sub"], email if isinstance(email, str) else None, flag, claims)
