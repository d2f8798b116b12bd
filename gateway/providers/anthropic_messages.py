"""OpenAI chat messages → an Anthropic system prompt and alternating turns (pure, no I/O).

Every shape read here is checked as it is read: anything malformed is a 400 naming its path (`messages[2].content`,
`messages[1].tool_calls[0].function.arguments`), never an exception the client would see as a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from core.errors import InvalidParameter

_ROLES = ("system", "developer", "user", "assistant", "tool")
_Turn = tuple[str, list[dict[str, Any]]]
_System = str | list[dict[str, Any]] | None


def bad(message: str, param: str, code: str = "invalid_value") -> InvalidParameter:
    """A 400 about the field at `param`."""
    return InvalidParameter(message, param=param, code=code)


def wrong_type(param: str, expected: str) -> InvalidParameter:
    """A 400 invalid_type for the field at `param`."""
    return bad(f"Invalid type for '{param}': expected {expected}.", param, "invalid_type")


def missing(param: str) -> InvalidParameter:
    """A 400 for a required field that is absent."""
    return bad(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def required(obj: dict[str, Any], name: str, path: str, kind: type, expected: str) -> Any:
    """`obj[name]`, which must be present (not null) and of `kind`."""
    value = obj.get(name)
    if value is None:
        raise missing(f"{path}.{name}")
    if not isinstance(value, kind):
        raise wrong_type(f"{path}.{name}", expected)
    return value


def split_messages(messages: Any) -> tuple[_System, list[dict[str, Any]]]:
    """The Anthropic `system` value and the user/assistant turns for OpenAI chat `messages`."""
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list):
        raise wrong_type("messages", "an array")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        path = f"messages[{index}]"
        role = _role(message, path)
        if role in ("system", "developer"):
            system.extend(_content_blocks(message.get("content"), f"{path}.content", allow_images=False))
        else:
            _append_turn(turns, *_TURNS[role](message, path))
    return _system_value(system), turns


def _role(message: Any, path: str) -> str:
    if not isinstance(message, dict):
        raise wrong_type(path, "an object")
    role: str = required(message, "role", path, str, "a string")
    if role not in _ROLES:
        raise bad(f"Invalid value for '{path}.role': {role!r} is not supported for this model.", f"{path}.role")
    return role


def _append_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    # Anthropic requires user and assistant turns to alternate, so consecutive same-role messages become one turn.
    if blocks and turns and turns[-1]["role"] == role:
        # Anthropic wants a user turn's tool_result blocks before any other block; the sort is stable.
        turns[-1]["content"] = sorted(turns[-1]["content"] + blocks, key=lambda block: block["type"] != "tool_result")
    elif blocks:
        turns.append({"role": role, "content": blocks})


def _system_value(blocks: list[dict[str, Any]]) -> _System:
    if any("cache_control" in block for block in blocks):
        return blocks  # keep the blocks so prompt-caching breakpoints reach Anthropic
    return "\n\n".join(block["text"] for block in blocks) or None


def _user_turn(message: dict[str, Any], path: str) -> _Turn:
    return "user", _content_blocks(message.get("content"), f"{path}.content", allow_images=True)


def _assistant_turn(message: dict[str, Any], path: str) -> _Turn:
    content = message.get("content")
    blocks = [] if content is None else _content_blocks(content, f"{path}.content", allow_images=False)
    calls = message.get("tool_calls")
    if calls is None:
        calls = []
    elif not isinstance(calls, list):
        raise wrong_type(f"{path}.tool_calls", "an array of objects")
    return "assistant", blocks + [_tool_use(call, f"{path}.tool_calls[{index}]") for index, call in enumerate(calls)]


def _tool_turn(message: dict[str, Any], path: str) -> _Turn:
    tool_call_id = required(message, "tool_call_id", path, str, "a string")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    content = message.get("content")
    value = content if isinstance(content, str) or content is None else _content_blocks(
        content, f"{path}.content", allow_images=True
    )
    if value:
        block["content"] = value
    return "user", [block]


_TURNS: dict[str, Callable[[dict[str, Any], str], _Turn]] = {
    "user": _user_turn,
    "assistant": _assistant_turn,
    "tool": _tool_turn,
}


def _content_blocks(content: Any, path: str, allow_images: bool) -> list[dict[str, Any]]:
    if content is None:
        raise missing(path)
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise wrong_type(path, "one of a string or array of objects")
    blocks = [_content_block(part, f"{path}[{index}]", allow_images) for index, part in enumerate(content)]
    # Anthropic rejects empty text blocks; OpenAI clients send "" beside tool_calls routinely.
    return [block for block in blocks if block.get("text") != ""]


def _content_block(part: Any, path: str, allow_images: bool) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise wrong_type(path, "an object")
    kind = required(part, "type", path, str, "a string")
    if kind in ("text", "refusal"):
        block: dict[str, Any] = {"type": "text", "text": required(part, kind, path, str, "a string")}
    elif kind == "image_url" and allow_images:
        block = {"type": "image", "source": _image_source(part.get("image_url"), f"{path}.image_url")}
    else:
        raise bad(f"Content part type {kind!r} is not supported here for this model.", f"{path}.type")
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _image_source(image: Any, path: str) -> dict[str, Any]:
    # OpenAI sends {"url": ...}; a bare string is accepted too.
    url, param = (image.get("url"), f"{path}.url") if isinstance(image, dict) else (image, path)
    if url is None:
        raise missing(param)
    if not isinstance(url, str):
        raise wrong_type(param, "a string")
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    header, _, data = url.removeprefix("data:").partition(",")
    media_type, _, encoding = header.partition(";")
    if not url.startswith("data:") or encoding != "base64" or not media_type.startswith("image/") or not data:
        raise bad("An image URL must be http(s) or a base64 data:image/... URL.", param)
    return {"type": "base64", "media_type": media_type, "data": data}


def _tool_use(call: Any, path: str) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise wrong_type(path, "an object")
    if call.get("type", "function") != "function":
        raise bad("Only function tool calls are supported for this model.", f"{path}.type")
    call_id = required(call, "id", path, str, "a string")
    function = required(call, "function", path, dict, "an object")
    name = required(function, "name", f"{path}.function", str, "a string")
    return {"type": "tool_use", "id": call_id, "name": name, "input": _arguments(function, f"{path}.function")}


def _arguments(function: dict[str, Any], path: str) -> dict[str, Any]:
    raw = function.get("arguments")
    if raw is not None and not isinstance(raw, str):
        raise wrong_type(f"{path}.arguments", "a string")
    try:
        arguments = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        raise bad("The tool call's arguments are not valid JSON.", f"{path}.arguments") from None
    if not isinstance(arguments, dict):
        raise bad("The tool call's arguments must be a JSON object.", f"{path}.arguments")
    return arguments
