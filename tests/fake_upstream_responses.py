"""The OpenAI Responses API as the fake upstream answers it: a Response object or its event stream."""

from __future__ import annotations

import time
from typing import Any

from tests.fake_upstream_behaviour import (
    TOOL_ARGUMENTS,
    Behaviour,
    Stream,
    chars_of,
    next_id,
    split_pieces,
    sse_event,
    text_of,
    tokens_for,
)
from tests.fake_upstream_chat import TOOL_CALL_ID, forced_tool, reply_text


def _input_messages(body: dict[str, Any]) -> list[Any]:
    """The input as chat-like messages: a bare string is one user message."""
    given = body.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return given if isinstance(given, list) else []


def _usage(body: dict[str, Any], output: str, behaviour: Behaviour) -> dict[str, Any] | None:
    if behaviour.no_usage:
        return None
    chars = chars_of(_input_messages(body)) + len(text_of(body.get("instructions")))
    prompt, completion = tokens_for(chars), tokens_for(len(output))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": prompt // 2 if behaviour.cached else 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _output_item(body: dict[str, Any], behaviour: Behaviour) -> tuple[dict[str, Any], str]:
    """The one output item (a message or a function call) and the text that counts as output tokens."""
    tool = forced_tool(body, behaviour)
    if tool:
        item = {"id": next_id("fc_fake"), "type": "function_call", "status": "completed", "call_id": TOOL_CALL_ID}
        return {**item, "name": tool, "arguments": TOOL_ARGUMENTS}, TOOL_ARGUMENTS
    text = reply_text(body, _input_messages(body))
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    item = {"id": next_id("msg_fake"), "type": "message", "status": "completed", "role": "assistant"}
    return {**item, "content": content}, text


_FIXED_FIELDS: dict[str, Any] = {
    "object": "response",
    "error": None,
    "incomplete_details": None,
    "parallel_tool_calls": True,
    "reasoning": {"effort": None, "summary": None},
    "service_tier": "default",
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}


def _envelope(body: dict[str, Any], model: str, status: str) -> dict[str, Any]:
    """Every Response field except output and usage."""
    return {
        "id": next_id("resp_fake"),
        **_FIXED_FIELDS,
        "created_at": int(time.time()),
        "status": status,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "previous_response_id": body.get("previous_response_id"),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "metadata": body.get("metadata") or {},
    }


def response(body: dict[str, Any], model: str, behaviour: Behaviour) -> dict[str, Any]:
    """A completed Response object."""
    item, output = _output_item(body, behaviour)
    envelope = _envelope(body, model, "completed")
    return {
        **envelope,
        "completed_at": envelope["created_at"],
        "output": [item],
        "usage": _usage(body, output, behaviour),
    }


def _item_events(item: dict[str, Any], text: str, pieces: int) -> list[dict[str, Any]]:
    """The events between output_item.added and output_item.done for one item."""
    ids = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "function_call":
        deltas = [
            {"type": "response.function_call_arguments.delta", **ids, "delta": piece}
            for piece in split_pieces(text, pieces)
        ]
        return [*deltas, {"type": "response.function_call_arguments.done", **ids, "arguments": text}]
    part = {"type": "output_text", "text": "", "annotations": []}
    ids["content_index"] = 0
    deltas = [
        {"type": "response.output_text.delta", **ids, "delta": piece, "logprobs": []}
        for piece in split_pieces(text, pieces)
    ]
    return [
        {"type": "response.content_part.added", **ids, "part": part},
        *deltas,
        {"type": "response.output_text.done", **ids, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": {**part, "text": text}},
    ]


def response_events(body: dict[str, Any], model: str, behaviour: Behaviour) -> Stream:
    """Every SSE frame of a streamed Response, response.created to response.completed."""
    item, output = _output_item(body, behaviour)
    started: dict[str, Any] = {**_envelope(body, model, "in_progress"), "output": [], "usage": None}
    emptied: dict[str, Any] = {"content": []} if item["type"] == "message" else {"arguments": ""}
    added = {**item, "status": "in_progress", **emptied}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": added},
        *_item_events(item, output, behaviour.pieces),
        {"type": "response.output_item.done", "output_index": 0, "item": item},
    ]
    done = {**started, "status": "completed", "completed_at": started["created_at"], "output": [item]}
    done["usage"] = _usage(body, output, behaviour)
    events.append({"type": "response.completed", "response": done})
    frames = [sse_event(event["type"], {**event, "sequence_number": n}) for n, event in enumerate(events)]
    return Stream(frames, fail_after=4 if item["type"] == "function_call" else 5)
