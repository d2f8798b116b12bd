"""Request bodies: read within the size limit, parsed with orjson, and only the fields we act on checked."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from core.errors import InvalidJSON, InvalidParameter, RequestTooLarge

_JSON_TYPES: dict[type, str] = {str: "string", list: "array", dict: "object", bool: "boolean", int: "integer"}
# (field, accepted types) that must be present, per endpoint.
REQUIRED: dict[str, tuple[tuple[str, tuple[type, ...]], ...]] = {
    "chat/completions": (("model", (str,)), ("messages", (list,))),
    "completions": (("model", (str,)), ("prompt", (str, list))),
    "embeddings": (("model", (str,)), ("input", (str, list))),
    "responses": (("model", (str,)),),
}
# Optional fields whose type Netra relies on.
OPTIONAL: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("stream", (bool,)), ("stream_options", (dict,)), ("n", (int,)), ("tools", (list,)),
)
# Fields that do not change the answer: left out of the request hash.
NON_SEMANTIC = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier", "safety_identifier"})
MAX_TAGS = 16
# Deeper bodies are refused: serialising them again (orjson stops near 255 levels) would fail later.
MAX_DEPTH = 128


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing anything over `limit` bytes (by header, or as it arrives)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = b""
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body += message.get("body", b"")
        if len(body) > limit:
            raise _too_large(limit)
        more = message.get("more_body", False)
    return body


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"The request body exceeds the limit of {limit} bytes.")


def parse_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from the body, or a 400 invalid_json."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"We could not parse the JSON body of your request: {exc.msg}.") from None
    if not isinstance(body, dict):
        raise InvalidJSON("The request body must be a JSON object.")
    # Counting brackets in C is far cheaper than walking the tree; only a body with many can be too deep.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and too_deep(body, MAX_DEPTH):
        raise InvalidJSON(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
    return body


def too_deep(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether containers nest deeper than `limit` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join(_JSON_TYPES.get(t, t.__name__) for t in types)


def _check_type(body: dict[str, Any], name: str, types: tuple[type, ...]) -> None:
    value = body[name]
    # bool is an int in Python but not in JSON.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise InvalidParameter(
            f"Invalid type for '{name}': expected {_type_name(types)}.", code="invalid_type", param=name
        )


def validate(endpoint: str, body: dict[str, Any]) -> None:
    """Check the fields Netra acts on; everything else is forwarded untouched for the provider to judge."""
    for name, types in REQUIRED[endpoint]:
        if name not in body or body[name] is None:
            raise InvalidParameter(
                f"Missing required parameter: '{name}'.", code="missing_required_parameter", param=name
            )
        _check_type(body, name, types)
    for name, types in OPTIONAL:
        if body.get(name) is not None:
            _check_type(body, name, types)


def request_hash(endpoint: str, body: dict[str, Any]) -> str:
    """A hash of the request with the fields that do not change the answer left out."""
    normal = {k: v for k, v in body.items() if k not in NON_SEMANTIC}
    data = endpoint.encode() + b"\n" + orjson.dumps(normal, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(item) for item in value)
    if isinstance(value, dict):
        return _text_length(value.get("content")) + _text_length(value.get("text"))
    return 0


def prompt_chars(endpoint: str, body: dict[str, Any]) -> int:
    """Characters of prompt text, for token estimates and prompt-size analysis."""
    field = {"chat/completions": "messages", "completions": "prompt", "embeddings": "input"}.get(endpoint, "input")
    return _text_length(body.get(field)) + _text_length(body.get("instructions"))


def parse_tags(header: str | None) -> list[str]:
    """Client tags from `x-netra-tags: a,b,team=x` (bounded in number and length)."""
    if not header:
        return []
    tags = (tag.strip()[:64] for tag in header.split(","))
    return [tag for tag in tags if tag][:MAX_TAGS]
