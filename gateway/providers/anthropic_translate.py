"""Pure translation between OpenAI chat completions and the Anthropic Messages API (no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from core.errors import InvalidParameter, NetraError, ServiceUnavailable, UpstreamFailed, UpstreamRejected
from core.usage import Usage

DEFAULT_MAX_TOKENS = 4096

# Anthropic rejects unknown fields, so the request is built from an allow-list. Dropped silently (no counterpart):
# stream_options (Anthropic always reports usage), seed, logprobs, top_logprobs, logit_bias, frequency_penalty,
# presence_penalty, store, metadata, modalities, audio, prediction, reasoning_effort, verbosity, service_tier,
# web_search_options, prompt_cache_key, message `name`. Anthropic-native fields sent via extra_body pass through:
_PASSTHROUGH = ("top_k", "thinking")

_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                   "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}
_UNSUPPORTED = "unsupported_parameter"
_Turn = tuple[str, list[dict[str, Any]]]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _bad(message: str, *, param: str = "messages", code: str = "invalid_value") -> InvalidParameter:
    return InvalidParameter(message, param=param, code=code)


def to_messages_request(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """Translate an OpenAI chat completion request body into an Anthropic Messages request body."""
    _reject_unsupported(body)
    system, messages = _split_messages(body.get("messages"))
    request: dict[str, Any] = {"model": upstream_model, "messages": messages, "max_tokens": _max_tokens(body)}
    if system:
        request["system"] = system
    request.update(_sampling(body))
    request.update(_tooling(body))
    request.update({key: body[key] for key in _PASSTHROUGH if key in body})
    return request


def _reject_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        raise _bad("This model's provider does not support multiple choices; `n` must be 1.", param="n")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise _bad("`response_format` is not supported for this model.", param="response_format", code=_UNSUPPORTED)
    # The legacy `functions` API would be ignored silently otherwise, and the model would never call them.
    if body.get("functions") is not None:
        raise _bad("`functions` is not supported for this model; use `tools`.", param="functions", code=_UNSUPPORTED)


def _split_messages(messages: Any) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    if messages is None:
        raise _bad("Missing required parameter: 'messages'.", code="missing_required_parameter")
    if not isinstance(messages, list):
        raise _bad("'messages' must be an array.", code="invalid_type")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = _role(message)
        if role in ("system", "developer"):
            system.extend(_content_blocks(message.get("content"), allow_images=False))
        else:
            _append_turn(turns, *_TURNS[role](message))
    return _system_value(system), turns


def _role(message: Any) -> str:
    if not isinstance(message, dict):
        raise _bad("Each message must be an object.")
    if (role := message.get("role")) not in ("system", "developer", "user", "assistant", "tool"):
        raise _bad(f"Invalid message role: {role!r}.")
    return str(role)


def _append_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    # Anthropic requires user and assistant turns to alternate, so consecutive same-role messages become one turn.
    if blocks and turns and turns[-1]["role"] == role:
        # Anthropic wants a user turn's tool_result blocks before any other block; the sort is stable.
        turns[-1]["content"] = sorted(turns[-1]["content"] + blocks, key=lambda block: block["type"] != "tool_result")
    elif blocks:
        turns.append({"role": role, "content": blocks})


def _system_value(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    if any("cache_control" in block for block in blocks):
        return blocks  # keep the blocks so prompt-caching breakpoints reach Anthropic
    return "\n\n".join(block["text"] for block in blocks) or None


def _assistant_turn(message: dict[str, Any]) -> _Turn:
    content = message.get("content")
    blocks = [] if content is None else _content_blocks(content, allow_images=False)
    return "assistant", blocks + [_tool_use(call) for call in message.get("tool_calls") or []]


def _tool_turn(message: dict[str, Any]) -> _Turn:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str):
        raise _bad("A tool message needs a string 'tool_call_id'.")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    content = message.get("content")
    value = content if isinstance(content, str) or content is None else _content_blocks(content, allow_images=True)
    if value:
        block["content"] = value
    return "user", [block]


_TURNS: dict[str, Callable[[dict[str, Any]], _Turn]] = {
    "user": lambda message: ("user", _content_blocks(message.get("content"), allow_images=True)),
    "assistant": _assistant_turn,
    "tool": _tool_turn,
}


def _content_blocks(content: Any, allow_images: bool) -> list[dict[str, Any]]:
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad("Message content must be a string or an array of content parts.", code="invalid_type")
    blocks = [_content_block(part, allow_images) for part in content]
    # Anthropic rejects empty text blocks; OpenAI clients send "" beside tool_calls routinely.
    return [block for block in blocks if block.get("text") != ""]


def _content_block(part: Any, allow_images: bool) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise _bad(f"A {kind} content part needs a string '{kind}'.", code="invalid_type")
        block: dict[str, Any] = {"type": "text", "text": text}
    elif kind == "image_url" and allow_images:
        block = {"type": "image", "source": _image_source(part.get("image_url"))}
    else:
        raise _bad(f"Content part type {kind!r} is not supported here for this model.")
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _image_source(image: Any) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise _bad("An image_url content part needs a string 'url'.", code="invalid_type")
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    header, _, data = url.removeprefix("data:").partition(",")
    media_type, _, encoding = header.partition(";")
    if not url.startswith("data:") or encoding != "base64" or not media_type.startswith("image/") or not data:
        raise _bad("An image URL must be http(s) or a base64 data:image/... URL.")
    return {"type": "base64", "media_type": media_type, "data": data}


def _tool_use(call: Any) -> dict[str, Any]:
    call_id, function = _obj(call).get("id"), _obj(_obj(call).get("function"))
    if not isinstance(function.get("name"), str):
        raise _bad("Each tool call needs a 'function' with a 'name'.")
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except (orjson.JSONDecodeError, TypeError):
        raise _bad(f"The arguments of tool call {call_id!r} are not valid JSON.") from None
    if not isinstance(arguments, dict):
        raise _bad(f"The arguments of tool call {call_id!r} must be a JSON object.")
    return {"type": "tool_use", "id": call_id, "name": function["name"], "input": arguments}


def _max_tokens(body: dict[str, Any]) -> int:
    param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    if (value := body.get(param)) is None:
        return DEFAULT_MAX_TOKENS
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"'{param}' must be an integer.", param=param, code="invalid_type")
    return value


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    fields = {key: body[key] for key in ("temperature", "top_p", "stream") if body.get(key) is not None}
    stop = body.get("stop")
    if isinstance(stop, str):
        fields["stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        fields["stop_sequences"] = stop
    elif stop is not None:
        raise _bad("'stop' must be a string or an array of strings.", param="stop", code="invalid_type")
    if isinstance(body.get("user"), str):
        fields["metadata"] = {"user_id": body["user"]}
    return fields


def _tooling(body: dict[str, Any]) -> dict[str, Any]:
    tools = body.get("tools")
    if not tools:
        return {}  # without tools a tool_choice means nothing, and Anthropic would reject it
    fields: dict[str, Any] = {"tools": [_tool(tool) for tool in tools]}
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        fields["tool_choice"] = choice
    return fields


def _tool(tool: Any) -> dict[str, Any]:
    function = _obj(_obj(tool).get("function"))
    if _obj(tool).get("type") != "function" or not isinstance(function.get("name"), str):
        raise _bad("Each tool must be of type 'function' with a 'function.name'.", param="tools")
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    spec = {"name": function["name"], "description": function.get("description"), "input_schema": schema,
            "cache_control": _obj(tool).get("cache_control")}
    return {key: value for key, value in spec.items() if value is not None}


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = {"type": "auto"} if parallel is False else None
    elif isinstance(choice, str) and choice in _TOOL_CHOICES:
        result = {"type": _TOOL_CHOICES[choice]}
    elif isinstance(name := _obj(_obj(choice).get("function")).get("name"), str):
        result = {"type": "tool", "name": name}
    else:
        raise _bad("'tool_choice' must be auto, required, none or a named function.", param="tool_choice")
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def from_messages_response(message: dict[str, Any], model: str, created: int) -> tuple[dict[str, Any], Usage]:
    """Translate an Anthropic Message into a chat.completion body and the call's Usage."""
    blocks = [block for block in message.get("content") or [] if isinstance(block, dict)]
    texts = [str(block.get("text", "")) for block in blocks if block.get("type") == "text"]
    calls = [_tool_call(block) for block in blocks if block.get("type") == "tool_use"]
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    usage = usage_from_anthropic(message.get("usage"))
    reason = finish_reason(message.get("stop_reason"))
    choice = {"index": 0, "message": reply, "logprobs": None, "finish_reason": reason}
    completion = {"id": f"chatcmpl-{message.get('id', '')}", "object": "chat.completion", "created": created,
                  "model": model, "system_fingerprint": None, "choices": [choice], "usage": openai_usage(usage)}
    return completion, usage


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {"id": block.get("id"), "type": "function", "function": {"name": block.get("name"), "arguments": arguments}}


def finish_reason(stop_reason: Any) -> str:
    """The OpenAI finish_reason for an Anthropic stop_reason (unknown ones read as a natural stop)."""
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_anthropic(usage: dict[str, Any] | None) -> Usage:
    """Anthropic usage → Usage; Anthropic counts cache reads and writes apart from input_tokens, so add them in."""
    if not isinstance(usage, dict):
        return Usage(reported=False)
    read = _count(usage.get("cache_read_input_tokens"))
    write = _count(usage.get("cache_creation_input_tokens"))
    prompt = _count(usage.get("input_tokens")) + read + write
    return Usage(prompt, _count(usage.get("output_tokens")), cached_tokens=read, cache_write_tokens=write)


def openai_usage(usage: Usage) -> dict[str, Any]:
    """The chat.completion `usage` object for a Usage."""
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens, "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": 0}}


def error_from_anthropic(status: int, body: bytes, retry_after: str | None = None) -> NetraError:
    """Translate an Anthropic error response (any body, even garbage) into Netra's error tree."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        envelope = None
    message = _obj(_obj(envelope).get("error")).get("message")
    if not isinstance(message, str) or not message:
        message = f"The provider returned HTTP {status}."
    if status in (401, 403):
        return UpstreamFailed("The provider rejected Netra's credential for this model.", code="upstream_auth_error")
    if status in (429, 529):
        headers = {"retry-after": retry_after or "1"}
        return ServiceUnavailable(f"The provider is overloaded: {message}", code="upstream_overloaded", headers=headers)
    # 402 is Netra's provider account out of credit: nothing the client can fix, so not passed through.
    if 400 <= status < 500 and status != 402:
        return UpstreamRejected(status, message, etype="invalid_request_error", code=None, param=None)
    return UpstreamFailed(f"The provider failed (HTTP {status}): {message}", code="upstream_error")
