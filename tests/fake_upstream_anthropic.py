"""The Anthropic Messages API as the fake upstream answers it: a Message object or its event stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fake_upstream_behaviour import (
    TOOL_ARGUMENTS,
    TOOL_INPUT,
    Behaviour,
    Stream,
    chars_of,
    next_id,
    split_pieces,
    sse_event,
    text_of,
    tokens_for,
)
from tests.fake_upstream_chat import forced_tool, reply_text

TOOL_USE_ID = "toolu_fake1"


@dataclass(frozen=True, slots=True)
class MessageReply:
    """What the assistant says: a text block or a tool_use block, and the token counts."""

    block: dict[str, Any]
    stop_reason: str
    input_tokens: int
    output_tokens: int


def missing_field(body: dict[str, Any]) -> str | None:
    """The first required Messages field the request lacks."""
    return next((field for field in ("model", "max_tokens", "messages") if field not in body), None)


def message_reply(body: dict[str, Any], behaviour: Behaviour) -> MessageReply:
    """Decide the reply block and token counts for a Messages request."""
    messages = body.get("messages")
    prompt = tokens_for(chars_of(messages) + len(text_of(body.get("system"))))
    tool = forced_tool(body, behaviour)
    if tool:
        block = {"type": "tool_use", "id": TOOL_USE_ID, "name": tool, "input": TOOL_INPUT}
        return MessageReply(block, "tool_use", prompt, tokens_for(len(TOOL_ARGUMENTS)))
    text = reply_text(body, messages)
    return MessageReply({"type": "text", "text": text}, "end_turn", prompt, tokens_for(len(text)))


def usage(reply: MessageReply, behaviour: Behaviour, output_tokens: int) -> dict[str, Any]:
    """Anthropic usage: cached input is counted apart from input_tokens."""
    return {
        "input_tokens": reply.input_tokens,
        "cache_creation_input_tokens": 20 if behaviour.cached else 0,
        "cache_read_input_tokens": 100 if behaviour.cached else 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _message(model: str, content: list[Any], stop_reason: str | None) -> dict[str, Any]:
    return {
        "id": next_id("msg_fake"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }


def message(body: dict[str, Any], model: str, behaviour: Behaviour) -> dict[str, Any]:
    """A Message object."""
    reply = message_reply(body, behaviour)
    result = _message(model, [reply.block], reply.stop_reason)
    if not behaviour.no_usage:
        result["usage"] = usage(reply, behaviour, reply.output_tokens)
    return result


def _block_events(reply: MessageReply, pieces: int) -> list[dict[str, Any]]:
    """content_block_start, ping, the deltas; the opening block is empty as Anthropic sends it."""
    block = reply.block
    if block["type"] == "tool_use":
        opening = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in split_pieces(TOOL_ARGUMENTS, pieces)]
    else:
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": part} for part in split_pieces(block["text"], pieces)]
    return [
        {"type": "content_block_start", "index": 0, "content_block": opening},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0, "delta": delta} for delta in deltas),
    ]


def message_events(body: dict[str, Any], model: str, behaviour: Behaviour) -> Stream:
    """Every SSE frame of a streamed Message, message_start to message_stop."""
    reply = message_reply(body, behaviour)
    started = _message(model, [], None)
    final_delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
    }
    if not behaviour.no_usage:
        started["usage"] = usage(reply, behaviour, 1)
        final_delta["usage"] = {"output_tokens": reply.output_tokens}
    events = [
        {"type": "message_start", "message": started},
        *_block_events(reply, behaviour.pieces),
        {"type": "content_block_stop", "index": 0},
        final_delta,
        {"type": "message_stop"},
    ]
    return Stream([sse_event(event["type"], event) for event in events], fail_after=4)
