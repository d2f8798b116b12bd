"""A cached entry sent back: as the JSON body it was, or as the SSE stream a provider would have sent.

The stream has OpenAI's chunk shape: for chat, per choice a role delta first, then the content (and refusal,
logprobs, tool calls) deltas, then a chunk with the finish reason; for completions one chunk per choice. A
usage-only chunk (`choices: []`) comes only when the client asked for it with `stream_options.include_usage`
(and then every chunk carries `usage: null`, as OpenAI's do); `data: [DONE]` is last.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.cache.assemble import usage_object
from gateway.cache.entry import CachedEntry

DONE = b"data: [DONE]\n\n"


def replay_json(entry: CachedEntry) -> bytes:
    """The body of a non-streamed answer: the stored answer as it is."""
    return entry.body


def replay_sse(entry: CachedEntry, include_usage: bool, model_name: str | None = None) -> list[bytes]:
    """The SSE events of a streamed answer from the entry; `model_name` replaces the answer's `model` if given."""
    if entry.endpoint not in ("chat/completions", "completions"):
        raise ValueError(f"{entry.endpoint} answers are not streamed")
    answer = orjson.loads(entry.body)
    base = _chunk_base(entry, answer, model_name, include_usage)
    pieces = _chat_pieces if entry.endpoint == "chat/completions" else _completion_pieces
    events = [_event(base, [piece]) for choice in answer.get("choices") or () for piece in pieces(choice)]
    if include_usage:
        usage = answer.get("usage") or usage_object(entry.usage())
        events.append(_event(base | {"usage": usage}, []))
    events.append(DONE)
    return events


def _chunk_base(entry: CachedEntry, answer: dict[str, Any], model: str | None, usage: bool) -> dict[str, Any]:
    kind = "chat.completion.chunk" if entry.endpoint == "chat/completions" else "text_completion"
    base = {"id": answer.get("id", ""), "object": kind, "created": answer.get("created", 0)}
    base["model"] = model or answer.get("model") or entry.model
    base |= {field: answer[field] for field in ("system_fingerprint", "service_tier") if field in answer}
    if usage:
        base["usage"] = None
    return base


def _event(base: dict[str, Any], choices: list[dict[str, Any]]) -> bytes:
    return b"data: " + orjson.dumps(base | {"choices": choices}) + b"\n\n"


def _chat_pieces(choice: dict[str, Any]) -> list[dict[str, Any]]:
    """The choice's chunks (their `choices` item): role, content, refusal, tool calls, finish."""
    index, message = choice.get("index", 0), choice.get("message") or {}
    content = message.get("content")
    deltas: list[dict[str, Any]] = [{"role": message.get("role") or "assistant", "content": "" if content else content}]
    deltas[0]["refusal"] = None
    if content:
        deltas.append({"content": content})
    if message.get("refusal"):
        deltas.append({"refusal": message["refusal"]})
    for number, call in enumerate(message.get("tool_calls") or ()):
        deltas.append({"tool_calls": [{"index": number, **call}]})
    if message.get("function_call"):
        deltas.append({"function_call": message["function_call"]})
    pieces = [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None} for delta in deltas]
    if choice.get("logprobs"):
        pieces[min(1, len(pieces) - 1)]["logprobs"] = choice["logprobs"]  # with the content, as OpenAI sends it
    pieces.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")})
    return pieces


def _completion_pieces(choice: dict[str, Any]) -> list[dict[str, Any]]:
    """The choice's one chunk: its text with its finish reason (the SDK's strict Completion type reads it)."""
    fields = ("text", "index", "logprobs", "finish_reason")
    return [{field: choice.get(field) for field in fields} | {"text": choice.get("text") or ""}]
