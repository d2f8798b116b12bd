"""OpenAI and OpenAI-compatible providers (OpenAI, Azure OpenAI, vLLM, Ollama…): bodies pass through untouched."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from core.config import ProviderConfig
from core.errors import UpstreamFailed
from gateway.providers.base import UpstreamCall, UpstreamReply
from gateway.providers.http import Timeouts, UpstreamHTTP
from gateway.providers.openai_stream import USAGE_ENDPOINTS, OpenAIStream, reply_chars, usage_from_openai

__all__ = ["AzureProvider", "OpenAIProvider", "OpenAIStream", "upstream_body", "usage_from_openai"]


def upstream_body(call: UpstreamCall) -> dict[str, Any]:
    """The body sent upstream: the client's, with the upstream model name and usage reporting asked for."""
    body = dict(call.body)
    body["model"] = call.model.upstream_name
    if call.stream and call.endpoint in USAGE_ENDPOINTS and not call.include_usage:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return body


class OpenAIProvider:
    """An OpenAI-compatible provider: base URL ending in /v1, bearer key."""

    endpoints = frozenset({"chat/completions", "completions", "embeddings", "responses"})
    config: ProviderConfig
    base: str
    headers: dict[str, str]

    def __init__(self, config: ProviderConfig, session: aiohttp.ClientSession, timeouts: Timeouts) -> None:
        self.http = UpstreamHTTP(session, timeouts, config.name)
        self.reconfigure(config)

    def reconfigure(self, config: ProviderConfig) -> None:
        """Send later requests with this config's credential and base URL (requests in flight keep theirs)."""
        # Whole values swapped, never mutated: a request that already read them keeps a consistent pair.
        self.config = config
        self.base = self.base_of(config)
        self.headers = self.build_headers()

    def base_of(self, config: ProviderConfig) -> str:
        """The URL the endpoint paths are appended to."""
        return config.resolved_base_url

    def supports(self, endpoint: str) -> bool:
        """OpenAI serves every endpoint Netra proxies."""
        return endpoint in self.endpoints

    def url(self, call: UpstreamCall) -> str:
        """Where the call goes."""
        return f"{self.base}/{call.endpoint}"

    def build_headers(self) -> dict[str, str]:
        """Request headers carrying the provider's credential (never the client's Netra key)."""
        headers = {"content-type": "application/json", **self.config.headers}
        if self.config.api_key is not None:
            headers["authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        return headers

    def encode(self, call: UpstreamCall) -> bytes:
        """The client's body as JSON, with the upstream model name and usage reporting asked for."""
        return orjson.dumps(upstream_body(call))

    async def send(self, call: UpstreamCall, body: bytes | None = None) -> UpstreamReply:
        """Forward a non-streaming call and pass the answer through byte for byte."""
        body = self.encode(call) if body is None else body
        response = await self.http.post(self.url(call), body, self.headers, stream=False)
        data = await self.http.read_all(response)
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamFailed("The provider sent a response that is not JSON.", code="upstream_error") from None
        usage = usage_from_openai(parsed.get("usage")) if isinstance(parsed, dict) else None
        return UpstreamReply(body=data, usage=usage, completion_chars=0 if usage else reply_chars(parsed))

    async def open_stream(self, call: UpstreamCall, body: bytes | None = None) -> OpenAIStream:
        """Forward a streaming call once the provider accepted it."""
        body = self.encode(call) if body is None else body
        response = await self.http.post(self.url(call), body, self.headers, stream=True)
        return OpenAIStream(self.http, response, call)


class AzureProvider(OpenAIProvider):
    """Azure OpenAI: deployment URLs, an api-version query parameter and an api-key header."""

    endpoints = frozenset({"chat/completions", "completions", "embeddings"})
    default_api_version = "2024-10-21"

    def base_of(self, config: ProviderConfig) -> str:
        """The resource's /openai URL."""
        base = config.resolved_base_url
        return base if base.endswith("/openai") else f"{base}/openai"

    def url(self, call: UpstreamCall) -> str:
        """The deployment's URL; the model's upstream name is the deployment name."""
        version = self.config.api_version or self.default_api_version
        return f"{self.base}/deployments/{call.model.upstream_name}/{call.endpoint}?api-version={version}"

    def build_headers(self) -> dict[str, str]:
        """Azure wants the key in an api-key header."""
        headers = {"content-type": "application/json", **self.config.headers}
        if self.config.api_key is not None:
            headers["api-key"] = self.config.api_key.get_secret_value()
        return headers
