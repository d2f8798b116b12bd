"""Relaying OpenAI-style SSE streams: usage, generated text and errors read from every event, however it is formatted.

Every data event is parsed as JSON (any spacing, key order or line layout a provider may use); an event is relayed
with its data exactly as it arrived unless Netra must remove the usage it asked for on the client's behalf, in
which case the chunk is re-serialised without it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from core.errors import NetraError, UpstreamFailed
from core.usage import Usage
from gateway.providers.base import DONE_EVENT, UpstreamCall, error_event, stream_ended_early
from gateway.providers.http import UpstreamHTTP
from gateway.providers.sse import KEEP_ALIVE, parse_sse, sse_frame

USAGE_ENDPOINTS = frozenset({"chat/completions", "completions"})
# A Responses stream ends with one of these (and EOF); one that stops before is a failure, never a success.
RESPONSE_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
RESPONSE_FAILED = frozenset({"response.failed", "error"})
# Responses events whose `delta` is generated text (audio deltas are base64, not text).
RESPONSE_TEXT_DELTAS = frozenset({
    "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta", "response.reasoning_text.delta", "response.reasoning_summary_text.delta",
})
_DELTA_TEXT_KEYS = ("content", "refusal", "reasoning_content")


def _tokens(value: Any) -> int:
    """A token count as a provider wrote it; anything that is not a finite number counts as none."""
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    return max(int(value), 0) if isinstance(value, float) and math.isfinite(value) else 0


def usage_from_openai(usage: Any) -> Usage | None:
    """Our Usage from an OpenAI `usage` object (cached tokens are already inside prompt_tokens)."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return Usage(prompt_tokens=_tokens(prompt), completion_tokens=_tokens(completion), cached_tokens=_tokens(cached))


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def choice_chars(choice: Any) -> int:
    """Characters of generated text in one streamed choice: content, refusal, reasoning and tool-call arguments
    of a chat delta, or the text of a legacy completion."""
    if not isinstance(choice, dict):
        return 0
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return _length(choice.get("text"))
    chars = sum(_length(delta.get(key)) for key in _DELTA_TEXT_KEYS)
    for call in _items(delta.get("tool_calls")):
        function = call.get("function") if isinstance(call, dict) else None
        chars += _length(function.get("arguments")) if isinstance(function, dict) else 0
    return chars


def reply_chars(reply: Any) -> int:
    """Characters of generated text in a complete answer: chat messages, completion texts or Responses output."""
    if not isinstance(reply, dict):
        return 0
    chars = 0
    for choice in _items(reply.get("choices")):
        message = choice.get("message") if isinstance(choice, dict) else None
        chars += choice_chars({"delta": message} if isinstance(message, dict) else choice)
    for item in _items(reply.get("output")):
        if isinstance(item, dict):
            parts = (part for part in _items(item.get("content")) if isinstance(part, dict))
            chars += _length(item.get("arguments")) + sum(_length(part.get("text")) for part in parts)
    return chars


def _malformed() -> UpstreamFailed:
    return UpstreamFailed("The provider sent a malformed stream event.", code="upstream_error")


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _malformed() from None
    if not isinstance(value, dict):
        raise _malformed()
    return value


class OpenAIStream:
    """Relays an OpenAI SSE stream event by event, reading usage and removing what the client did not ask for."""

    def __init__(self, http: UpstreamHTTP, response: aiohttp.ClientResponse, call: UpstreamCall) -> None:
        self.http = http
        self.response = response
        self.strip_usage = call.endpoint in USAGE_ENDPOINTS and not call.include_usage
        self.responses_api = call.endpoint == "responses"
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error_code = ""
        self.done = False  # the stream's last event arrived: [DONE], or a Responses stream's terminal event

    async def events(self) -> AsyncIterator[bytes]:
        """Complete SSE events as they arrive; an upstream failure becomes an in-band error event."""
        buffer = bytearray()
        try:
            while not self.done:
                chunk = await self.http.read_chunk(self.response)
                if not chunk:
                    break
                buffer += chunk
                out, failure = self._take(buffer)
                if out:
                    yield out
                if failure is not None:
                    raise failure
        except NetraError as exc:
            yield self._failed(exc)
            return
        if not self.done:
            # A provider's own error event already reached the client: only the end of the stream is missing.
            yield DONE_EVENT if self.error_code else self._failed(stream_ended_early())

    def _failed(self, error: NetraError) -> bytes:
        self.error_code = error.code
        return error_event(error)

    def _take(self, buffer: bytearray) -> tuple[bytes, NetraError | None]:
        """The client's bytes for every complete event in the buffer, and the failure that stopped them, if any."""
        out: list[bytes] = []
        try:
            for name, data in parse_sse(buffer, comments=True):
                if not self.done:
                    out.append(self._relay(name, data))
        except NetraError as exc:
            return b"".join(out), exc
        return b"".join(out), None

    def _relay(self, name: str, data: bytes) -> bytes:
        stripped = data.strip()
        if not stripped:
            return sse_frame(name, b"") if name == KEEP_ALIVE else b""  # keep-alives go on; empty events do not
        if stripped == b"[DONE]":
            self.done = not self.responses_api  # a Responses stream is over at its terminal event, not at [DONE]
            return DONE_EVENT
        event = _json_object(data)
        if name == "error" or event.get("error") is not None:
            self.error_code = "upstream_error"  # relayed as the provider sent it; the call is recorded as failed
        if self.responses_api:
            return self._response_event(name, event, data)
        return self._chunk(name, event, data)

    def _chunk(self, name: str, chunk: dict[str, Any], data: bytes) -> bytes:
        """A chat or completions chunk: text counted, usage read, and removed when the client did not ask for it."""
        for choice in _items(chunk.get("choices")):
            self.completion_chars += choice_chars(choice)
        if "usage" not in chunk:
            return sse_frame(name, data)
        usage = usage_from_openai(chunk["usage"])
        self.usage = usage or self.usage
        if not self.strip_usage:
            return sse_frame(name, data)
        if usage is not None and not chunk.get("choices"):
            return b""  # the usage-only chunk Netra asked for on the client's behalf
        del chunk["usage"]
        return sse_frame(name, orjson.dumps(chunk))

    def _response_event(self, name: str, event: dict[str, Any], data: bytes) -> bytes:
        """A Responses API event: text deltas counted, usage read from the terminal event, which ends the stream."""
        kind = name if name not in ("message", "") else str(event.get("type", ""))
        if kind in RESPONSE_TEXT_DELTAS:
            self.completion_chars += _length(event.get("delta"))
        if kind in RESPONSE_TERMINAL or self.error_code:
            self.done = True
            response = event.get("response")
            if isinstance(response, dict):
                self.usage = usage_from_openai(response.get("usage")) or self.usage
            if kind in RESPONSE_FAILED:
                self.error_code = "upstream_error"
        return sse_frame(name, data)

    async def aclose(self) -> None:
        """Close the upstream connection; an unfinished upstream generation is cancelled with it."""
        if self.done:
            self.response.release()
        else:
            self.response.close()
