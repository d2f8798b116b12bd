"""Anthropic: chat completions translated to the Messages API and back, streaming included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from core.config import ProviderConfig
from core.errors import NetraError, UpstreamFailed
from core.usage import Usage
from gateway.providers.anthropic_stream import AnthropicStreamError, StreamTranslator
from gateway.providers.anthropic_translate import error_from_anthropic, from_messages_response, to_messages_request
from gateway.providers.base import DONE_EVENT, UpstreamCall, UpstreamReply, error_event, sse_event
from gateway.providers.http import Timeouts, UpstreamHTTP
from gateway.providers.openai_stream import choice_chars, reply_chars
from gateway.providers.sse import parse_sse

ANTHROPIC_VERSION = "2023-06-01"


def _anthropic_error(status: int, body: bytes, headers: Any) -> NetraError:
    return error_from_anthropic(status, body, headers)


class AnthropicStream:
    """Reads Anthropic stream events and yields them as chat.completion.chunk events."""

    def __init__(self, http: UpstreamHTTP, response: aiohttp.ClientResponse, translator: StreamTranslator) -> None:
        self.http = http
        self.response = response
        self.translator = translator
        self.completion_chars = 0
        self.error_code = ""

    @property
    def usage(self) -> Usage | None:
        """Usage reported in message_start and message_delta (None when the provider reported none)."""
        usage = self.translator.usage
        return usage if usage is not None and usage.reported else None

    async def events(self) -> AsyncIterator[bytes]:
        """Translated events as they arrive; failures become an in-band error event."""
        buffer = bytearray()
        try:
            while not self.translator.finished:
                chunk = await self.http.read_chunk(self.response)
                if not chunk:
                    break
                buffer += chunk
                out = self._translate(parse_sse(buffer))
                if out:
                    yield out
        except AnthropicStreamError as exc:
            yield self._failed(exc.error)
            return
        except NetraError as exc:
            yield self._failed(exc)
            return
        yield DONE_EVENT if self.translator.finished else self._failed(
            UpstreamFailed("The provider ended the stream early.", code="upstream_error")
        )

    def _failed(self, error: NetraError) -> bytes:
        self.error_code = error.code
        return error_event(error)

    def _translate(self, events: list[tuple[str, bytes]]) -> bytes:
        out: list[bytes] = []
        for name, data in events:
            try:
                payload = orjson.loads(data) if data else {}
            except orjson.JSONDecodeError:
                raise UpstreamFailed("The provider sent a malformed stream event.") from None
            for chunk in self.translator.feed(name, payload if isinstance(payload, dict) else {}):
                self._count(chunk)
                out.append(sse_event(chunk))
        return b"".join(out)

    def _count(self, chunk: dict[str, Any]) -> None:
        # Tool-call arguments are generated text too: the estimate without usage must count them.
        self.completion_chars += sum(choice_chars(choice) for choice in chunk.get("choices") or ())

    async def aclose(self) -> None:
        """Close the upstream connection (cancelling the generation if it is still running)."""
        if self.translator.finished:
            self.response.release()
        else:
            self.response.close()


class AnthropicProvider:
    """Anthropic's Messages API at `{base_url}/v1/messages`, with x-api-key and anthropic-version."""

    config: ProviderConfig
    url: str
    headers: dict[str, str]

    def __init__(self, config: ProviderConfig, session: aiohttp.ClientSession, timeouts: Timeouts) -> None:
        self.http = UpstreamHTTP(session, timeouts, config.name, errors=_anthropic_error)
        self.reconfigure(config)

    def reconfigure(self, config: ProviderConfig) -> None:
        """Send later requests with this config's credential and base URL (requests in flight keep theirs)."""
        self.config = config
        self.url = f"{config.resolved_base_url}/v1/messages"
        self.headers = self.build_headers()

    def supports(self, endpoint: str) -> bool:
        """Only chat completions translate to the Messages API."""
        return endpoint == "chat/completions"

    def build_headers(self) -> dict[str, str]:
        """The provider's credential and API version."""
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION, **self.config.headers}
        if self.config.api_key is not None:
            headers["x-api-key"] = self.config.api_key.get_secret_value()
        return headers

    def encode(self, call: UpstreamCall) -> bytes:
        """The chat request translated to a Messages request (a 400 naming the field it cannot translate)."""
        body = to_messages_request(call.body, call.model.upstream_name)
        body["stream"] = call.stream
        return orjson.dumps(body)

    async def send(self, call: UpstreamCall, body: bytes | None = None) -> UpstreamReply:
        """A Messages call, answered as a chat.completion."""
        body = self.encode(call) if body is None else body
        response = await self.http.post(self.url, body, self.headers, stream=False)
        data = await self.http.read_all(response)
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamFailed("The provider sent a response that is not JSON.") from None
        if not isinstance(message, dict):
            raise UpstreamFailed("The provider sent an unexpected response.")
        completion, usage = from_messages_response(message, call.model.name, int(time.time()))
        if usage.reported:
            return UpstreamReply(body=orjson.dumps(completion), usage=usage)
        return UpstreamReply(body=orjson.dumps(completion), usage=None, completion_chars=reply_chars(completion))

    async def open_stream(self, call: UpstreamCall, body: bytes | None = None) -> AnthropicStream:
        """A streaming Messages call, relayed as chat.completion.chunk events."""
        body = self.encode(call) if body is None else body
        response = await self.http.post(self.url, body, self.headers, stream=True)
        translator = StreamTranslator(call.model.name, int(time.time()), call.include_usage)
        return AnthropicStream(self.http, response, translator)
