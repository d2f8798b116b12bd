"""OpenAI chat completions as the fake upstream answers them: a ChatCompletion body or chat.completion.chunk frames."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tests.fake_upstream_behaviour import (
    DEFAULT_REPLY,
    JSON_REPLY,
    SSE_DONE,
    TOOL_ARGUMENTS,
    Behaviour,
    Stream,
    chars_of,
    echo_of,
    last_user_text,
    next_id,
    split_pieces,
    sse_data,
    tokens_for,
)

FINGERPRINT = "fp_fake0001"
TOOL_CALL_ID = "call_fake1"
_JSON_FORMATS = frozenset({"json_object", "json_schema"})


@dataclass(frozen=True, slots=True)
class ChatReply:
    """What the assistant says: text, or a call of the named tool."""

    content: str | None
    tool_name: str | None
    prompt_tokens: int
    completion_tokens: int
    n: int

    @property
    def finish_reason(self) -> str:
        """OpenAI's finish reason for this reply."""
        return "tool_calls" if self.tool_name else "stop"


def tool_name(tool: Any) -> str:
    """The function name of an OpenAI (``function.name``) or Anthropic (``name``) tool definition."""
    if not isinstance(tool, dict):
        return "tool"
    function = tool.get("function")
    name = function.get("name") if isinstance(function, dict) else tool.get("name")
    return name if isinstance(name, str) else "tool"


def forced_tool(body: dict[str, Any], behaviour: Behaviour) -> str | None:
    """The tool to call: when the model name says ``tools`` or tool_choice forces one (OpenAI or Anthropic style)."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function")
        forced = function.get("name") if isinstance(function, dict) else choice.get("name")
        if isinstance(forced, str):
            return forced
        choice = choice.get("type")
    if behaviour.tools or choice in ("required", "any"):
        return tool_name(tools[0])
    return None


def reply_text(body: dict[str, Any], messages: Any) -> str:
    """The text answer: JSON for response_format requests, the echo for ``echo:`` prompts, else the default."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in _JSON_FORMATS:
        return JSON_REPLY
    echo = echo_of(last_user_text(messages))
    return DEFAULT_REPLY if echo is None else echo


def choice_count(body: dict[str, Any]) -> int:
    """The requested ``n``, clamped to something sane."""
    n = body.get("n")
    return min(max(n, 1), 128) if isinstance(n, int) else 1


def chat_reply(body: dict[str, Any], behaviour: Behaviour) -> ChatReply:
    """Decide the reply and its token counts for a chat request."""
    messages = body.get("messages")
    tool = forced_tool(body, behaviour)
    content = None if tool else reply_text(body, messages)
    n = choice_count(body)
    completion = tokens_for(len(TOOL_ARGUMENTS if tool else content or ""))
    return ChatReply(content, tool, tokens_for(chars_of(messages)), completion * n, n)


def chat_usage(reply: ChatReply, behaviour: Behaviour) -> dict[str, Any]:
    """OpenAI usage with the detail objects real responses carry."""
    cached = reply.prompt_tokens // 2 if behaviour.cached else 0
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def tool_call(name: str) -> dict[str, Any]:
    """The complete tool call of a JSON answer."""
    return {"id": TOOL_CALL_ID, "type": "function", "function": {"name": name, "arguments": TOOL_ARGUMENTS}}


def chat_completion(body: dict[str, Any], model: str, behaviour: Behaviour) -> dict[str, Any]:
    """A ChatCompletion object."""
    reply = chat_reply(body, behaviour)
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None, "annotations": []}
    if reply.tool_name:
        message["tool_calls"] = [tool_call(reply.tool_name)]
    choices = [
        {"index": index, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        for index in range(reply.n)
    ]
    completion: dict[str, Any] = {
        "id": next_id("chatcmpl-fake"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": chat_usage(reply, behaviour),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if behaviour.no_usage:
        del completion["usage"]
    return completion


def _opening_delta(reply: ChatReply) -> dict[str, Any]:
    if reply.tool_name is None:
        return {"role": "assistant", "content": "", "refusal": None}
    call = {"index": 0, "id": TOOL_CALL_ID, "type": "function", "function": {"name": reply.tool_name, "arguments": ""}}
    return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}


def _piece_delta(reply: ChatReply, piece: str) -> dict[str, Any]:
    if reply.tool_name is None:
        return {"content": piece}
    return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}


def _deltas(reply: ChatReply, behaviour: Behaviour) -> list[tuple[dict[str, Any], str | None]]:
    """Each chunk's (delta, finish_reason) for one choice, in order."""
    text = TOOL_ARGUMENTS if reply.tool_name else reply.content or ""
    pieces = [(_piece_delta(reply, piece), None) for piece in split_pieces(text, behaviour.pieces)]
    return [(_opening_delta(reply), None), *pieces, ({}, reply.finish_reason)]


def chat_chunks(body: dict[str, Any], model: str, behaviour: Behaviour) -> Stream:
    """Every SSE frame of a streamed chat completion, ``[DONE]`` included."""
    reply = chat_reply(body, behaviour)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True and not behaviour.no_usage
    base: dict[str, Any] = {
        "id": next_id("chatcmpl-fake"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    tail = {"usage": None} if include_usage else {}
    frames = [
        sse_data(
            {**base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}], **tail}
        )
        for delta, finish in _deltas(reply, behaviour)
        for index in range(reply.n)
    ]
    if include_usage:
        frames.append(sse_data({**base, "choices": [], "usage": chat_usage(reply, behaviour)}))
    frames.append(SSE_DONE)
    return Stream(frames, fail_after=2 * reply.n)
