"""Reading a JSON request body: bounded in size, an object, with typed fields."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from core.errors import InvalidJSON, InvalidParameter, RequestTooLarge

MAX_BODY_BYTES = 64 * 1024


async def read_object(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object, or the envelope's 400/413."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The body exceeds {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(f"The body exceeds {limit} bytes.")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON("The body is not valid JSON.") from exc
    if not isinstance(parsed, dict):
        raise InvalidJSON("The body must be a JSON object.")
    return parsed


def string_field(body: dict[str, Any], name: str) -> str:
    """A required string field, or the envelope's 400 naming it."""
    value = body.get(name)
    if value is None:
        raise InvalidParameter(f"Missing required parameter: '{name}'.", code="missing_required_parameter", param=name)
    if not isinstance(value, str):
        raise InvalidParameter(f"'{name}' must be a string.", code="invalid_type", param=name)
    return value
