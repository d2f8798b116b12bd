"""Anthropic Messages SSE stream → OpenAI chat.completion.chunk dicts (pure: bytes and dicts in, dicts out)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from core.errors import NetraError
from core.usage import Usage
from gateway.providers.anthropic_translate import (
    error_from_anthropic,
    finish_reason,
    openai_usage,
    usage_from_anthropic,
)

# A mid-stream `error` event carries only a type; this is the status the same error has as an HTTP response, so it
# classifies exactly like one (overloaded → 503 upstream_overloaded, api_error → 502 upstream_error, ...).
_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                 "permission_error": 403, "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
                 "api_error": 500, "timeout_error": 504, "overloaded_error": 529}

_Chunks = list[dict[str, Any]]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _index(data: dict[str, Any]) -> int:
    index = data.get("index")
    return index if isinstance(index, int) else -1


class AnthropicStreamError(Exception):
    """An `error` event arrived after the stream started; `error` is what the client should see."""

    def __init__(self, error: NetraError) -> None:
        super().__init__(error.message)
        self.error = error


class StreamTranslator:
    """Turns one Anthropic message stream into OpenAI chunks, tracking ids, tool ordinals and usage."""

    def __init__(self, model: str, created: int, include_usage: bool) -> None:
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.finished = False
        self._id = "chatcmpl-"
        self._raw_usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # Anthropic content block index → OpenAI tool_calls index
        self._handlers: dict[str, Callable[[dict[str, Any]], _Chunks]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    def feed(self, event: str, data: dict[str, Any]) -> _Chunks:
        """Translate one Anthropic SSE event into zero or more chat.completion.chunk dicts."""
        name = event if event and event != "message" else str(data.get("type", ""))
        # ping, content_block_stop and event types added later produce nothing.
        handler = self._handlers.get(name)
        return handler(data) if handler else []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk = {"id": self._id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "system_fingerprint": None, "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None  # OpenAI sends an explicit null on every chunk before the usage chunk
        return chunk

    def _message_start(self, data: dict[str, Any]) -> _Chunks:
        message = _obj(data.get("message"))
        self._id = f"chatcmpl-{message.get('id', '')}"
        usage = message.get("usage")
        self._raw_usage = dict(usage) if isinstance(usage, dict) else {}
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: dict[str, Any]) -> _Chunks:
        block = _obj(data.get("content_block"))
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []  # thinking, redacted_thinking and server-side tool blocks have no OpenAI counterpart
        ordinal = self._tools[_index(data)] = len(self._tools)
        call = {"index": ordinal, "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": ""}}
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, data: dict[str, Any]) -> _Chunks:
        delta = _obj(data.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        ordinal = self._tools.get(_index(data))
        if kind == "input_json_delta" and ordinal is not None and delta.get("partial_json"):
            return [self._chunk({"tool_calls": [{"index": ordinal, "function": {"arguments": delta["partial_json"]}}]})]
        return []  # thinking, signature and citation deltas are dropped

    def _message_delta(self, data: dict[str, Any]) -> _Chunks:
        usage = data.get("usage")
        if isinstance(usage, dict):
            # output_tokens here is the final total; newer API versions repeat the input counts too.
            self._raw_usage.update({key: value for key, value in usage.items() if value is not None})
        self.usage = usage_from_anthropic(self._raw_usage or None)
        stop_reason = _obj(data.get("delta")).get("stop_reason")
        return [self._chunk({}, finish_reason(stop_reason))] if stop_reason else []

    def _message_stop(self, data: dict[str, Any]) -> _Chunks:
        self.finished = True
        if self.usage is None:
            self.usage = usage_from_anthropic(self._raw_usage or None)
        if not self.include_usage:
            return []
        return [{"id": self._id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "system_fingerprint": None, "choices": [], "usage": openai_usage(self.usage)}]

    def _error(self, data: dict[str, Any]) -> _Chunks:
        status = _ERROR_STATUS.get(str(_obj(data.get("error")).get("type")), 500)
        raise AnthropicStreamError(error_from_anthropic(status, orjson.dumps(data)))
