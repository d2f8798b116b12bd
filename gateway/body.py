"""Request bodies: read within the size limit, parsed with orjson and measured (types: gateway.validation)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from core.errors import InvalidJSON, RequestTooLarge
from gateway.validation import validate as validate

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
