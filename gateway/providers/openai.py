"""OpenAI and OpenAI-compatible providers (OpenAI, Azure OpenAI, vLLM, Ollama…): bodies pass through untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from core.config import ProviderConfig
from core.errors import NetraError, UpstreamFailed
from core.usage import Usage
from gateway.providers.base import DONE_EVENT, UpstreamCall, UpstreamReply, error_event
from gateway.providers.http import Timeouts, UpstreamHTTP
from gateway.providers.sse import parse_sse

_USAGE_NULL = b',"usage":null'
_USAGE_OBJECT = b'"usage":{'
_TEXT_KEYS = (b'"content":"', b'"text":"')


def _text_length(payload: bytes) -> int:
    """Roughly how many characters of generated text an event carries (escapes count as written)."""
    for key in _TEXT_KEYS:
        start = payload.find(key)
        if start >= 0:
            start += len(key)
            end = start
            while (end := payload.find(b'"', end)) > 0 and payload[end - 1] == 92:  # 92 is a backslash
                end += 1
            return max(end - start, 0)
    return 0


def usage_from_openai(usage: Any) -> Usage | None:
    """Our Usage from an OpenAI `usage` object (cached tokens are already inside prompt_tokens)."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens")) or 0
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    completion = usage.get("completion_tokens", usage.get("output_tokens")) or 0
    cached = details.get("cached_tokens") or 0 if isinstance(details, dict) else 0
    return Usage(prompt_tokens=int(prompt), completion_tokens=int(completion), cached_tokens=int(cached))


def _reframe(name: str, data: bytes) -> bytes:
    lines = data.replace(b"\n", b"\ndata: ")
    return b"data: " + lines if name == "message" else f"event: {name}\n".encode() + b"data: " + lines


def upstream_body(call: UpstreamCall) -> dict[str, Any]:
    """The body sent upstream: the client's, with the upstream model name and usage reporting asked for."""
    body = dict(call.body)
    body["model"] = call.model.upstream_name
    if call.stream and call.endpoint in ("chat/completions", "completions") and not call.include_usage:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return body


class OpenAIStream:
    """Relays an OpenAI SSE stream event by event, reading usage and removing what the client did not ask for."""

    def __init__(self, http: UpstreamHTTP, response: aiohttp.ClientResponse, call: UpstreamCall) -> None:
        self.http = http
        self.response = response
        self.strip_usage = call.endpoint in ("chat/completions", "completions") and not call.include_usage
        # The Responses API ends its stream with a response.completed event and EOF, not [DONE].
        self.ends_at_eof = call.endpoint == "responses"
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error_code = ""
        self.done = False

    async def events(self) -> AsyncIterator[bytes]:
        """Complete SSE events as they arrive; an upstream failure becomes an in-band error event."""
        buffer = bytearray()
        try:
            while not self.done:
                chunk = await self.http.read_chunk(self.response)
                if not chunk:
                    self.done = self.done or self.ends_at_eof
                    break
                buffer += chunk
                out = self._take(buffer)
                if out:
                    yield out
        except NetraError as exc:
            self.error_code = exc.code
            yield error_event(exc)
            return
        if not self.done:
            self.error_code = "upstream_error"
            yield error_event(UpstreamFailed("The provider ended the stream early.", code="upstream_error"))

    def _take(self, buffer: bytearray) -> bytes:
        if b"\r" in buffer:
            # CR or CRLF line ends (allowed by the SSE spec): the general parser, then events re-framed with LF.
            return b"".join(self._event(_reframe(name, data)) for name, data in parse_sse(buffer))
        end = buffer.rfind(b"\n\n")
        if end < 0:
            return b""
        complete = bytes(buffer[: end + 2])
        del buffer[: end + 2]
        return b"".join(self._event(raw) for raw in complete.split(b"\n\n") if raw.strip())

    def _event(self, raw: bytes) -> bytes:
        raw = raw.strip(b"\r\n")
        if not raw.startswith(b"data:"):
            if raw.startswith(b"event: response.completed"):
                self._response_usage(raw)
            return raw + b"\n\n"
        payload = raw[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return DONE_EVENT
        return self._data(payload)

    def _response_usage(self, raw: bytes) -> None:
        _, _, payload = raw.partition(b"data:")
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        response = event.get("response") if isinstance(event, dict) else None
        if isinstance(response, dict):
            self.usage = usage_from_openai(response.get("usage")) or self.usage

    def _data(self, payload: bytes) -> bytes:
        if not (payload.startswith(b"{") and payload.endswith(b"}")):
            raise UpstreamFailed("The provider sent a malformed stream event.", code="upstream_error")
        # Only the events that carry usage or an error are parsed; the others (nearly all of them) are
        # relayed as they are, their text measured in place for the estimate used when no usage arrives.
        if _USAGE_OBJECT in payload or payload.startswith(b'{"error"'):
            if self._parsed(payload):
                return b""
        else:
            self.completion_chars += _text_length(payload)
        if self.strip_usage:
            payload = payload.replace(_USAGE_NULL, b"")
        return b"data: " + payload + b"\n\n"

    def _parsed(self, payload: bytes) -> bool:
        """Read a usage or error event; True when it is the usage-only chunk to withhold from the client."""
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamFailed("The provider sent a malformed stream event.", code="upstream_error") from None
        if not isinstance(chunk, dict):
            return False
        if "error" in chunk:
            self.error_code = "upstream_error"
        self._account(chunk)
        return self.strip_usage and chunk.get("usage") is not None and not chunk.get("choices")

    def _account(self, chunk: dict[str, Any]) -> None:
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str):
                self.completion_chars += len(text)

    async def aclose(self) -> None:
        """Close the upstream connection; an unfinished upstream generation is cancelled with it."""
        if self.done:
            self.response.release()
        else:
            self.response.close()


class OpenAIProvider:
    """An OpenAI-compatible provider: base URL ending in /v1, bearer key."""

    endpoints = frozenset({"chat/completions", "completions", "embeddings", "responses"})

    def __init__(self, config: ProviderConfig, session: aiohttp.ClientSession, timeouts: Timeouts) -> None:
        self.config = config
        self.http = UpstreamHTTP(session, timeouts, config.name)
        self.base = config.resolved_base_url
        self.headers = self.build_headers()

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

    async def send(self, call: UpstreamCall) -> UpstreamReply:
        """Forward a non-streaming call and pass the answer through byte for byte."""
        body = orjson.dumps(upstream_body(call))
        response = await self.http.post(self.url(call), body, self.headers, stream=False)
        data = await self.http.read_all(response)
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamFailed("The provider sent a response that is not JSON.", code="upstream_error") from None
        usage = usage_from_openai(parsed.get("usage")) if isinstance(parsed, dict) else None
        return UpstreamReply(body=data, usage=usage)

    async def open_stream(self, call: UpstreamCall) -> OpenAIStream:
        """Forward a streaming call once the provider accepted it."""
        body = orjson.dumps(upstream_body(call))
        response = await self.http.post(self.url(call), body, self.headers, stream=True)
        return OpenAIStream(self.http, response, call)


class AzureProvider(OpenAIProvider):
    """Azure OpenAI: deployment URLs, an api-version query parameter and an api-key header."""

    endpoints = frozenset({"chat/completions", "completions", "embeddings"})
    default_api_version = "2024-10-21"

    def __init__(self, config: ProviderConfig, session: aiohttp.ClientSession, timeouts: Timeouts) -> None:
        super().__init__(config, session, timeouts)
        self.base = self.base if self.base.endswith("/openai") else f"{self.base}/openai"

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
