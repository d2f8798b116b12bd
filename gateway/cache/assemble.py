"""A streamed answer put back together as the complete object a non-streamed request gets, to be cached.

Only a stream that ended normally is: it reached `data: [DONE]`, carried no error event, and every choice
finished with a reason other than "length". Anything else gives None (never cached).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from core.usage import Usage
from gateway.cache.entry import CachedEntry, make_entry, usage_from_body
from gateway.providers.sse import parse_sse

_META = ("id", "created", "model", "system_fingerprint", "service_tier")
_OBJECTS = {"chat/completions": "chat.completion", "completions": "text_completion"}


def read_chunks(events: Iterable[bytes]) -> list[dict[str, Any]] | None:
    """The JSON chunks of a complete stream in order, or None if it was cut, failed, or is not JSON."""
    buffer = bytearray().join(events)
    chunks: list[dict[str, Any]] = []
    for name, data in parse_sse(buffer):
        if name == "error":
            return None
        if data.strip() == b"[DONE]":
            return chunks
        if not data.strip():
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(chunk, dict) or chunk.get("error") is not None:
            return None
        chunks.append(chunk)
    return None  # no [DONE]: the stream was cut


class _Choice:
    """One choice being assembled from its deltas."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.texts: dict[str, list[str]] = {}  # "content", "refusal" (chat) or "text" (completions)
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, Any] | None = None
        self.logprobs: dict[str, list[Any]] = {}
        self.finish_reason: str | None = None

    def add(self, choice: dict[str, Any]) -> None:
        """Merge one chunk's piece of this choice."""
        delta = choice.get("delta")
        source = delta if isinstance(delta, dict) else choice  # completions chunks carry `text` on the choice
        self.role = source.get("role") or self.role
        for field in ("content", "refusal", "text"):
            if isinstance(source.get(field), str):
                self.texts.setdefault(field, []).append(source[field])
        for call in source.get("tool_calls") or ():
            if isinstance(call, dict):
                _merge_call(self.tool_calls.setdefault(int(call.get("index", 0)), {}), call)
        if isinstance(source.get("function_call"), dict):
            self.function_call = _merge_call(self.function_call or {}, source["function_call"])
        if isinstance(choice.get("logprobs"), dict):
            for field, items in choice["logprobs"].items():
                if isinstance(items, list):
                    self.logprobs.setdefault(field, []).extend(items)
        self.finish_reason = choice.get("finish_reason") or self.finish_reason

    def text(self, field: str) -> str | None:
        """The joined pieces of a text field, None if none arrived."""
        pieces = self.texts.get(field)
        return "".join(pieces) if pieces is not None else None

    def chat(self) -> dict[str, Any]:
        """The choice as a chat.completion has it."""
        message: dict[str, Any] = {"role": self.role, "content": self.text("content"), "refusal": self.text("refusal")}
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        if self.function_call is not None:
            message["function_call"] = self.function_call
        logprobs = self.logprobs or None
        return {"index": self.index, "message": message, "logprobs": logprobs, "finish_reason": self.finish_reason}

    def completion(self) -> dict[str, Any]:
        """The choice as a text_completion has it."""
        logprobs = self.logprobs or None
        text = self.text("text") or ""
        return {"text": text, "index": self.index, "logprobs": logprobs, "finish_reason": self.finish_reason}


def _merge_call(into: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Merge a tool_calls (or function_call) delta: ids, types and names set once, arguments appended."""
    for field in ("id", "type", "name"):
        if isinstance(delta.get(field), str) and delta[field]:
            into[field] = delta[field]
    if "arguments" in delta or "name" in delta:  # a legacy function_call delta
        into["arguments"] = into.get("arguments", "") + str(delta.get("arguments") or "")
    function = delta.get("function")
    if isinstance(function, dict):
        into.setdefault("function", {"name": "", "arguments": ""})
        into.setdefault("type", "function")
        if function.get("name"):
            into["function"]["name"] = function["name"]
        into["function"]["arguments"] += str(function.get("arguments") or "")
    return into


def assemble(endpoint: str, chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The complete answer the chunks make, or None when it must not be cached."""
    if endpoint not in _OBJECTS or not chunks:
        return None
    meta: dict[str, Any] = {}
    choices: dict[int, _Choice] = {}
    usage: Any = None
    for chunk in chunks:
        for field in _META:
            if chunk.get(field) is not None:
                meta.setdefault(field, chunk[field])
        for piece in chunk.get("choices") or ():
            if isinstance(piece, dict):
                index = int(piece.get("index", 0))
                choices.setdefault(index, _Choice(index)).add(piece)
        usage = chunk.get("usage") or usage
    return _answer(endpoint, meta, [choices[i] for i in sorted(choices)], usage)


def _answer(endpoint: str, meta: dict[str, Any], choices: list[_Choice], usage: Any) -> dict[str, Any] | None:
    if not choices or any(c.finish_reason in (None, "length") for c in choices):
        return None
    shaped = [c.chat() if endpoint == "chat/completions" else c.completion() for c in choices]
    answer = {"id": meta.get("id", ""), "object": _OBJECTS[endpoint], "created": meta.get("created", 0)}
    answer |= {"model": meta.get("model", ""), "choices": shaped}
    answer |= {field: meta[field] for field in ("system_fingerprint", "service_tier") if field in meta}
    if isinstance(usage, dict):
        answer["usage"] = usage
    return answer


def entry_from_stream(
    events: Iterable[bytes], *, endpoint: str, request_id: str, stored_at: float, usage: Usage | None = None,
    model: str | None = None,
) -> CachedEntry | None:
    """The entry for a streamed answer from the events relayed to the client, or None when it must not be cached.

    `usage` is what the stream reported (the gateway strips the usage chunk when the client did not ask for it):
    used when the events carry no usage chunk, and written into the assembled answer then.
    """
    chunks = read_chunks(events)
    answer = assemble(endpoint, chunks) if chunks is not None else None
    if answer is None:
        return None
    if "usage" not in answer and usage is not None and usage.reported:
        answer["usage"] = usage_object(usage)
    tokens = usage_from_body(answer) or usage
    return make_entry(
        orjson.dumps(answer), endpoint=endpoint, request_id=request_id, stored_at=stored_at, usage=tokens,
        model=model or str(answer.get("model") or ""),
    )


def usage_object(usage: Usage) -> dict[str, Any]:
    """Usage as an OpenAI answer writes it."""
    return {
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens, "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
