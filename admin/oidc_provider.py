"""The OpenID Connect issuer as the admin app sees it: its discovery document, its signing keys (cached, fetched
again when a token names a key we do not hold) and its token endpoint."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import jwt
import orjson

from admin.oidc_config import OidcConfig, oidc_config
from admin.state import Clock
from core.settings import Settings

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Discovery and keys are fetched again after this long even when nothing asks for an unknown key, so a key the
# issuer withdrew stops being trusted.
CACHE_TTL = timedelta(hours=1)
MAX_RESPONSE_BYTES = 1024 * 1024


class IssuerUnavailable(Exception):
    """The issuer could not be reached, or answered with something that is not what OIDC promises."""


class CodeRefused(Exception):
    """The token endpoint refused the authorisation code; `error` is its OAuth error code."""

    def __init__(self, error: str) -> None:
        super().__init__(f"the issuer refused the code: {error}")
        self.error = error


@dataclass(frozen=True, slots=True)
class Discovery:
    """The endpoints of the issuer's discovery document we use, and how it wants the client to authenticate."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    secret_in_body: bool

    @classmethod
    def of(cls, document: Mapping[str, Any], issuer: str) -> Discovery:
        """Read a discovery document, checking it is the configured issuer's own."""
        if document.get("issuer") != issuer:
            raise IssuerUnavailable("the discovery document names another issuer")
        endpoints = [document.get(name) for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
        if not all(isinstance(url, str) and url.startswith(("https://", "http://")) for url in endpoints):
            raise IssuerUnavailable("the discovery document lacks an endpoint")
        challenges = document.get("code_challenge_methods_supported")
        if isinstance(challenges, list) and "S256" not in challenges:
            raise IssuerUnavailable("the issuer does not support PKCE with S256")
        methods = document.get("token_endpoint_auth_methods_supported")
        # client_secret_basic is the default (OIDC Discovery §3); the secret goes in the body only when asked.
        in_body = isinstance(methods, list) and "client_secret_basic" not in methods and "client_secret_post" in methods
        authorize, token, keys = (str(url) for url in endpoints)
        return cls(authorize, token, keys, secret_in_body=in_body)


def _keys_of(document: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """The RS256 signing keys of a JWKS, by kid ("" for a key without one); other keys are ignored."""
    found: dict[str, jwt.PyJWK] = {}
    listed = document.get("keys")
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", "RS256") != "RS256":
            continue
        try:
            found[str(entry.get("kid", ""))] = jwt.PyJWK(entry, algorithm="RS256")
        except jwt.PyJWTError:
            continue  # a malformed key cannot verify anything; the others still can
    return found


class OidcProvider:
    """One issuer's discovery, keys and token endpoint, over the app's HTTP session; the caches live here."""

    def __init__(self, config: OidcConfig, http: aiohttp.ClientSession, clock: Clock) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._lock = asyncio.Lock()
        self._discovery: tuple[datetime, Discovery] | None = None
        self._keys: tuple[datetime, dict[str, jwt.PyJWK]] | None = None
        self._key_fetches = 0

    async def _json(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > MAX_RESPONSE_BYTES:
                raise IssuerUnavailable(f"{response.url.host} answered with more than {MAX_RESPONSE_BYTES} bytes")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise IssuerUnavailable(f"{response.url.host} answered with something that is not JSON") from exc
        if not isinstance(parsed, dict):
            raise IssuerUnavailable(f"{response.url.host} answered with JSON that is not an object")
        return parsed

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with self._http.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise IssuerUnavailable(f"{url} answered {response.status}")
                return await self._json(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IssuerUnavailable(f"{url} could not be reached") from exc

    def _fresh(self, fetched_at: datetime) -> bool:
        return self._clock() - fetched_at < CACHE_TTL

    async def discovery(self) -> Discovery:
        """The issuer's endpoints (fetched once an hour at most)."""
        if self._discovery is not None and self._fresh(self._discovery[0]):
            return self._discovery[1]
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        found = Discovery.of(await self._get(url), self.config.issuer)
        self._discovery = (self._clock(), found)
        return found

    async def signing_key(self, kid: str) -> jwt.PyJWK | None:
        """The issuer's key with this kid: from the cache, else from the JWKS fetched again; None if unpublished."""
        seen = self._key_fetches
        if self._keys is not None and self._fresh(self._keys[0]) and kid in self._keys[1]:
            return self._keys[1][kid]
        async with self._lock:
            # Callbacks waiting together on an unknown kid share the one fetch that the first of them made.
            if self._key_fetches == seen or self._keys is None:
                document = await self._get((await self.discovery()).jwks_uri)
                self._keys, self._key_fetches = (self._clock(), _keys_of(document)), self._key_fetches + 1
            return self._keys[1].get(kid)

    def _client_auth(self, discovery: Discovery, form: dict[str, str]) -> dict[str, str]:
        """The headers authenticating the client (or, when the issuer asks for it, the secret added to the form)."""
        if discovery.secret_in_body:
            form.update(client_id=self.config.client_id, client_secret=self.config.client_secret)
            return {}
        # RFC 6749 §2.3.1: the id and secret are form-encoded before they go into the Basic header.
        pair = f"{quote_plus(self.config.client_id)}:{quote_plus(self.config.client_secret)}"
        return {"authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}

    async def exchange(self, code: str, verifier: str) -> str:
        """The ID token the token endpoint gives for an authorisation code and its PKCE verifier."""
        discovery = await self.discovery()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.config.redirect_uri,
                "code_verifier": verifier}
        headers = {"accept": "application/json", **self._client_auth(discovery, form)}
        try:
            async with self._http.post(discovery.token_endpoint, data=form, headers=headers,
                                       allow_redirects=False) as response:
                answer = await self._json(response)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IssuerUnavailable("the token endpoint could not be reached") from exc
        if status in (400, 401):
            raise CodeRefused(str(answer.get("error", "invalid_request"))[:64])
        token = answer.get("id_token")
        if status != 200 or not isinstance(token, str):
            raise IssuerUnavailable(f"the token endpoint answered {status} without an ID token")
        return token


@asynccontextmanager
async def oidc_provider(settings: Settings, clock: Clock) -> AsyncIterator[OidcProvider | None]:
    """The issuer's client for the app's lifetime when single sign-on is configured, else None."""
    config = oidc_config(settings)
    if config is None:
        yield None
        return
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        yield OidcProvider(config, http, clock)
