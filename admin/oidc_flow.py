"""One sign-in's secrets (state, nonce, PKCE verifier), kept in the browser that started it in a signed,
short-lived cookie, so the callback only completes in that browser and within minutes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import jwt

from admin.oidc_config import OidcConfig

FLOW_COOKIE = "netra_oidc"
FLOW_PATH = "/api/auth/oidc"
FLOW_TTL = timedelta(minutes=10)
# Derived from the access-token key for this purpose alone, so a flow cookie can never pass for an access token.
PURPOSE = b"netra/admin/oidc-flow/v1"
ALGORITHM = "HS256"


class FlowInvalid(Exception):
    """The flow cookie is missing, forged, expired, or belongs to another sign-in."""


@dataclass(frozen=True, slots=True)
class Flow:
    """The secrets of one sign-in attempt."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Flow:
        """Fresh random values (the verifier is 64 characters, within PKCE's 43 to 128)."""
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        """The S256 code challenge: base64url(SHA-256(verifier)) without padding (RFC 7636 §4.2)."""
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def flow_key(signing_key: bytes) -> bytes:
    """The key that signs flow cookies."""
    return hmac.new(signing_key, PURPOSE, hashlib.sha256).digest()


def seal(flow: Flow, key: bytes, now: datetime) -> str:
    """The flow as a cookie value: signed, expiring FLOW_TTL from now."""
    issued = int(now.timestamp())
    claims = {"st": flow.state, "nn": flow.nonce, "cv": flow.verifier, "iat": issued,
              "exp": issued + int(FLOW_TTL.total_seconds())}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def unseal(cookie: str | None, state: str | None, key: bytes, now: datetime) -> Flow:
    """The flow of this cookie if we signed it, it has not expired and its state is the callback's; else FlowInvalid."""
    if not cookie:
        raise FlowInvalid("no sign-in was started in this browser, or it was already completed")
    try:
        claims = jwt.decode(cookie, key, algorithms=[ALGORITHM],
                            options={"require": ["st", "nn", "cv", "exp"], "verify_exp": False})
    except jwt.PyJWTError as exc:
        raise FlowInvalid("the sign-in cookie is not one this app made") from exc
    values = [claims.get(name) for name in ("st", "nn", "cv")]
    if not all(isinstance(value, str) for value in values) or not isinstance(claims["exp"], int):
        raise FlowInvalid("the sign-in cookie is malformed")
    if claims["exp"] <= now.timestamp():
        raise FlowInvalid("the sign-in took too long")
    if not state or not hmac.compare_digest(str(values[0]).encode(), state.encode()):
        raise FlowInvalid("the sign-in's state does not match this browser's")
    return Flow(*(str(value) for value in values))


def authorize_url(endpoint: str, config: OidcConfig, flow: Flow) -> str:
    """Where to send the browser: the issuer's authorisation endpoint with a code request, PKCE, state and nonce."""
    query = urlencode({
        "response_type": "code", "client_id": config.client_id, "redirect_uri": config.redirect_uri,
        "scope": config.scopes, "state": flow.state, "nonce": flow.nonce,
        "code_challenge": flow.challenge, "code_challenge_method": "S256",
    })
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
