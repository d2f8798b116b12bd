"""Pure translation between OpenAI chat completions and the Anthropic Messages API (no I/O)."""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import NetraError, ServiceUnavailable, UpstreamFailed, UpstreamRejected
from core.usage import Usage
from gateway.providers.anthropic_messages import bad, required, split_messages, wrong_type
from gateway.providers.failures import parse_retry_after, provider_hint

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


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def to_messages_request(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """Translate an OpenAI chat completion request body into an Anthropic Messages request body."""
    _reject_unsupported(body)
    system, messages = split_messages(body.get("messages"))
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
        raise bad("This model's provider does not support multiple choices; `n` must be 1.", "n")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise bad("`response_format` is not supported for this model.", "response_format", _UNSUPPORTED)
    # The legacy `functions` API would be ignored silently otherwise, and the model would never call them.
    if body.get("functions") is not None:
        raise bad("`functions` is not supported for this model; use `tools`.", "functions", _UNSUPPORTED)


def _typed(obj: dict[str, Any], name: str, kinds: type | tuple[type, ...], expected: str, path: str = "") -> Any:
    """`obj[name]` if present and of `kinds`, None if absent or null; `path` is where `obj` sits in the body."""
    value = obj.get(name)
    # bool is an int in Python but not a number in JSON.
    if value is not None and not (isinstance(value, kinds) and (kinds is bool or not isinstance(value, bool))):
        raise wrong_type(f"{path}.{name}" if path else name, expected)
    return value


def _max_tokens(body: dict[str, Any]) -> int:
    param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value: int | None = _typed(body, param, int, "an integer")
    return DEFAULT_MAX_TOKENS if value is None else value


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    fields = {key: value for key in ("temperature", "top_p")
              if (value := _typed(body, key, (int, float), "a number")) is not None}
    if body.get("stream") is not None:
        fields["stream"] = body["stream"]
    stop = _typed(body, "stop", (str, list), "one of a string or array of strings")
    if isinstance(stop, str):
        stop = [stop]
    for index, item in enumerate(stop or ()):
        if not isinstance(item, str):
            raise wrong_type(f"stop[{index}]", "a string")
    if stop:
        fields["stop_sequences"] = stop
    if (user := _typed(body, "user", str, "a string")) is not None:
        fields["metadata"] = {"user_id": user}
    return fields


def _tooling(body: dict[str, Any]) -> dict[str, Any]:
    tools = _typed(body, "tools", list, "an array of objects")
    parallel = _typed(body, "parallel_tool_calls", bool, "a boolean")
    if not tools:
        return {}  # without tools a tool_choice means nothing, and Anthropic would reject it
    fields: dict[str, Any] = {"tools": [_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]}
    choice = _tool_choice(body.get("tool_choice"), parallel)
    if choice is not None:
        fields["tool_choice"] = choice
    return fields


def _tool(tool: Any, path: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise wrong_type(path, "an object")
    if tool.get("type") != "function":
        raise bad("Only tools of type 'function' are supported for this model.", f"{path}.type")
    function = required(tool, "function", path, dict, "an object")
    name = required(function, "name", f"{path}.function", str, "a string")
    description = _typed(function, "description", str, "a string", f"{path}.function")
    schema = _typed(function, "parameters", dict, "an object", f"{path}.function")
    spec = {"name": name, "description": description, "input_schema": schema or {"type": "object", "properties": {}},
            "cache_control": tool.get("cache_control")}
    return {key: value for key, value in spec.items() if value is not None}


def _tool_choice(choice: Any, parallel: bool | None) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = {"type": "auto"} if parallel is False else None
    elif isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise bad("'tool_choice' must be auto, required, none or a named function.", "tool_choice")
        result = {"type": _TOOL_CHOICES[choice]}
    elif isinstance(choice, dict):
        result = {"type": "tool", "name": _chosen_function(choice)}
    else:
        raise wrong_type("tool_choice", "one of a string or object")
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def _chosen_function(choice: dict[str, Any]) -> str:
    if choice.get("type", "function") != "function":
        raise bad("Only a named function can be chosen as 'tool_choice' for this model.", "tool_choice.type")
    function = required(choice, "function", "tool_choice", dict, "an object")
    name: str = required(function, "name", "tool_choice.function", str, "a string")
    return name


def from_messages_response(message: dict[str, Any], model: str, created: int) -> tuple[dict[str, Any], Usage]:
    """Translate an Anthropic Message into a chat.completion body and the call's Usage."""
    content = message.get("content")
    blocks = [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
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


def error_from_anthropic(status: int, body: bytes, headers: Any = None) -> NetraError:
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
        overloaded = ServiceUnavailable(f"The provider is overloaded: {message}", code="upstream_overloaded")
        return provider_hint(overloaded, headers)
    # 402 is Netra's provider account out of credit: nothing the client can fix, so not passed through.
    if 400 <= status < 500 and status != 402:
        return UpstreamRejected(status, message, etype="invalid_request_error", code=None, param=None)
    failed = UpstreamFailed(f"The provider failed (HTTP {status}): {message}", code="upstream_error")
    failed.provider_retry_after = parse_retry_after(headers)
    return failed
