"""The provider side of the Files and Batches passthrough: which provider, its URLs and headers, one request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from core.config import ProviderConfig
from core.errors import InvalidParameter, NotFound, UpstreamFailed
from gateway.providers.base import error_from_status, map_errors
from gateway.providers.http import UpstreamHTTP
from gateway.providers.openai import AzureProvider, OpenAIProvider
from gateway.state import GatewayState

KINDS = frozenset({"openai", "azure"})
PROVIDER_HEADER = "x-netra-provider"
NO_PROVIDER = (
    "The Files and Batches API needs a provider of kind openai or azure, and none is configured on this gateway."
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A provider's answer: its bytes and content type."""

    body: bytes
    content_type: str

    def json(self) -> dict[str, Any]:
        """The answer as a JSON object; anything else is the provider's failure."""
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamFailed("The provider sent a response that is not a JSON object.", code="upstream_error")
        return data

    def object(self) -> dict[str, Any]:
        """The answer as an object with a string id (a file or batch)."""
        data = self.json()
        if not isinstance(data.get("id"), str) or not data["id"]:
            raise UpstreamFailed("The provider sent an object without an id.", code="upstream_error")
        return data


class BatchUpstream:
    """One openai- or azure-kind provider, spoken to at its Files and Batches paths with its own credential."""

    def __init__(self, provider: OpenAIProvider) -> None:
        self.config: ProviderConfig = provider.config
        self.name = provider.config.name
        self.azure = isinstance(provider, AzureProvider)
        self.http: UpstreamHTTP = provider.http
        self.base = provider.base
        self.supports = provider.supports
        # The JSON content type is set per request (multipart uploads carry their own).
        self.headers = {k: v for k, v in provider.headers.items() if k.lower() != "content-type"}

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """`{base}/{path}`; Azure's with its api-version first."""
        params = dict(query or {})
        if self.azure:
            params = {"api-version": self.config.api_version or AzureProvider.default_api_version, **params}
        return f"{self.base}/{path}" + (f"?{urlencode(params)}" if params else "")

    def endpoint_path(self, url: str) -> str:
        """A batch endpoint as this provider names it: Azure's paths have no /v1 prefix."""
        return url.removeprefix("/v1") if self.azure else url

    async def send(
        self, method: str, path: str, *, json: Any = None, form: aiohttp.FormData | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request; a non-2xx answer raises our error (the provider's 4xx passes through)."""
        headers = dict(self.headers)
        data: Any = form
        if json is not None:
            headers["content-type"] = "application/json"
            data = orjson.dumps(json)
        timeout = self.http.json_timeout
        with map_errors(self.name):
            async with self.http.session.request(
                method, self.url(path, query), data=data, headers=headers, timeout=timeout, allow_redirects=False,
            ) as response:
                body = await response.read()
                if response.status >= 400:
                    raise error_from_status(response.status, body, response.headers)
                return Reply(body, response.headers.get("content-type", "application/octet-stream"))


def batch_providers(state: GatewayState) -> dict[str, OpenAIProvider]:
    """The configured providers that can hold files and batches, in configuration order."""
    return {
        name: p for name, p in state.providers.items() if isinstance(p, OpenAIProvider) and p.config.kind in KINDS
    }


def chosen(state: GatewayState, headers: Mapping[str, str]) -> BatchUpstream:
    """The provider named by the x-netra-provider header, else the first openai- or azure-kind one."""
    usable = batch_providers(state)
    name = headers.get(PROVIDER_HEADER)
    if name is None:
        if not usable:
            raise NotFound(NO_PROVIDER)
        return BatchUpstream(next(iter(usable.values())))
    if name not in usable:
        why = "is not configured" if name not in state.providers else "is not of kind openai or azure"
        raise InvalidParameter(
            f"The provider `{name}` named by {PROVIDER_HEADER} {why}; the Files and Batches API needs one of: "
            f"{', '.join(usable) or 'none is configured'}.", code="invalid_value", param=PROVIDER_HEADER,
        )
    return BatchUpstream(usable[name])


def named(state: GatewayState, headers: Mapping[str, str]) -> str | None:
    """The provider the x-netra-provider header names (checked as for a create), or None without the header."""
    return chosen(state, headers).name if PROVIDER_HEADER in headers else None


def holding(state: GatewayState, name: str) -> BatchUpstream:
    """The provider that holds a stored object (it may have been removed from the configuration since)."""
    provider = batch_providers(state).get(name)
    if provider is None:
        raise NotFound(f"The provider `{name}` that holds this object is no longer configured on this gateway.")
    return BatchUpstream(provider)
