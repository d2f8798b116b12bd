"""A fake OpenID Connect issuer on loopback: discovery, JWKS, an authorisation endpoint that approves the configured
user at once, and a token endpoint. RSA keys are made per run; tests turn knobs to make it misbehave.

It is as strict as real issuers: the client is authenticated, codes are single-use and bound to the redirect URI and
the PKCE challenge, and its JSON varies in spacing and key order.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus, urlencode

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

REALM = "/realms/netra"
DROP = object()  # a claim override that removes the claim


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair and its kid."""

    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def new(cls) -> SigningKey:
        return cls(f"k-{secrets.token_hex(4)}", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, Any]:
        """The public key as the JWKS lists it."""
        return {**json.loads(RSAAlgorithm.to_jwk(self.private.public_key())), "kid": self.kid, "use": "sig",
                "alg": "RS256"}


@dataclass
class Grant:
    """An authorisation code's binding."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    claims: dict[str, Any]


@dataclass
class FakeIssuer:
    """The issuer; `url` once started. Knobs: user, claim_changes, header_changes, sign_with, tamper, fail_token."""

    redirect_uri: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    client_id: str = "netra-admin"
    client_secret: str = "fake secret: with spaces & symbols"
    user: dict[str, Any] | None = None
    claim_changes: dict[str, Any] = field(default_factory=dict)
    header_changes: dict[str, Any] = field(default_factory=dict)
    sign_with: SigningKey | None = None
    tamper: bool = False
    fail_token: str | None = None  # "500" or "garbage"
    auth_methods: list[str] = field(default_factory=lambda: ["client_secret_basic", "client_secret_post"])
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.new()])
    codes: dict[str, Grant] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_fetches: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None
    _styles: Any = field(default_factory=lambda: itertools.cycle(range(4)))

    def rotate(self) -> SigningKey:
        """A new signing key replaces the published ones."""
        self.keys = [SigningKey.new()]
        return self.keys[0]

    async def start(self) -> FakeIssuer:
        app = web.Application()
        app.router.add_get(f"{REALM}/.well-known/openid-configuration", self._discovery)
        app.router.add_get(f"{REALM}/protocol/certs", self._jwks)
        app.router.add_get(f"{REALM}/protocol/auth", self._authorize)
        app.router.add_post(f"{REALM}/protocol/token", self._token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{REALM}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _json(self, body: dict[str, Any], status: int = 200) -> web.Response:
        style = next(self._styles)
        items = list(body.items())
        if style == 1:
            items.reverse()
        text = json.dumps(dict(items), indent=2 if style == 2 else None, sort_keys=style == 3,
                          separators=(",", ":") if style == 0 else None)
        return web.Response(text=text, status=status, content_type="application/json", charset="utf-8")

    async def _discovery(self, request: web.Request) -> web.Response:
        base = f"{self.url}/protocol"
        return self._json({
            "issuer": self.url, "authorization_endpoint": f"{base}/auth", "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/certs", "userinfo_endpoint": f"{base}/userinfo",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
            "token_endpoint_auth_methods_supported": self.auth_methods,
            "code_challenge_methods_supported": ["plain", "S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "email", "email_verified", "groups"],
        })

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return self._json({"keys": [key.jwk() for key in self.keys]})

    def _checked_authorize(self, query: dict[str, str]) -> str | None:
        """What is wrong with an authorisation request (a real issuer shows its own error page), or None."""
        if query.get("client_id") != self.client_id or query.get("redirect_uri") != self.redirect_uri:
            return "unknown client or redirect URI"
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return "unsupported request"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return "PKCE with S256 is required"
        return None

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        if (problem := self._checked_authorize(query)) is not None:
            return web.Response(text=f"<h1>Error</h1><p>{problem}</p>", status=400, content_type="text/html")
        answer: dict[str, str] = {"error": "access_denied"} if self.user is None else {}
        if self.user is not None:
            code = secrets.token_urlsafe(24)
            self.codes[code] = Grant(self.client_id, query["redirect_uri"], query["code_challenge"],
                                     query.get("nonce"), dict(self.user))
            answer["code"] = code
        if "state" in query:
            answer["state"] = query["state"]
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode(answer)}")

    def _client(self, request: web.Request, form: dict[str, str]) -> str | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic ") and "client_secret_basic" in self.auth_methods:
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        elif "client_secret" in form and "client_secret_post" in self.auth_methods:
            client_id, secret = form.get("client_id", ""), form["client_secret"]
        else:
            return None
        return client_id if (client_id, secret) == (self.client_id, self.client_secret) else None

    def _redeem(self, form: dict[str, str]) -> Grant | None:
        grant = self.codes.pop(form.get("code", ""), None)  # single use, whatever happens next
        if grant is None or form.get("grant_type") != "authorization_code":
            return None
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if form.get("redirect_uri") != grant.redirect_uri or challenge != grant.challenge:
            return None
        return grant

    async def _token(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        if self.fail_token == "500":
            return web.Response(text="<html>upstream connect error</html>", status=500, content_type="text/html")
        if self.fail_token == "garbage":
            return web.Response(text='{"access_token": "x", ', content_type="application/json")
        if self._client(request, form) is None:
            return self._json({"error": "invalid_client"}, 401)
        grant = self._redeem(form)
        if grant is None:
            return self._json({"error": "invalid_grant", "error_description": "Code not valid"}, 400)
        return self._json({"access_token": secrets.token_urlsafe(32), "token_type": "Bearer", "expires_in": 300,
                           "id_token": self.id_token(grant), "scope": "openid email profile"})

    def id_token(self, grant: Grant) -> str:
        """The signed ID token for a grant, as the knobs shape it."""
        now = int(self.clock().timestamp())
        claims = {"iss": self.url, "aud": grant.client_id, "iat": now, "exp": now + 300, "auth_time": now,
                  "azp": grant.client_id, **({"nonce": grant.nonce} if grant.nonce else {}), **grant.claims}
        for name, value in self.claim_changes.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = self.sign_with or self.keys[0]
        header = {"alg": "RS256", "typ": "JWT", "kid": key.kid, **self.header_changes}
        # Signed here with RS256 whatever the header says, as a forger would.
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = key.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        if self.tamper:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        return f"{signing_input}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
