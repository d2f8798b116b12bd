"""Reading query parameters and body fields for the REST API: pagination, filters, optional and list fields."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request

from admin.principal import client_address, principal_of
from admin.services.changes import Actor
from core.errors import InvalidParameter

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 10**9


@dataclass(frozen=True, slots=True)
class Page:
    """Which slice of a list to return."""

    limit: int
    offset: int


def _whole(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidParameter(f"'{name}' must be a whole number from {low} to {high}.", param=name)
    return int(raw)


def optional_whole(request: Request, name: str, low: int = 1, high: int = 2**31 - 1) -> int | None:
    """An optional whole-number query parameter within bounds."""
    if request.query_params.get(name) is None:
        return None
    return _whole(request, name, 0, low, high)


def page_of(request: Request) -> Page:
    """`limit` (1-500, default 50) and `offset` (default 0) from the query."""
    return Page(_whole(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT), _whole(request, "offset", 0, 0, MAX_OFFSET))


def paged(items: Sequence[T], page: Page, render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """A list response: one page of the items, the total and whether more follow."""
    chosen = items[page.offset:page.offset + page.limit]
    return {
        "object": "list", "data": [render(item) for item in chosen], "total": len(items), "limit": page.limit,
        "offset": page.offset, "has_more": page.offset + len(chosen) < len(items),
    }


def choice(request: Request, name: str, choices: Sequence[str]) -> str | None:
    """An optional query parameter that must be one of `choices`."""
    raw = request.query_params.get(name)
    if raw is not None and raw not in choices:
        raise InvalidParameter(f"'{name}' must be one of {', '.join(choices)}.", code="invalid_value", param=name)
    return raw


def optional_string(body: dict[str, Any], name: str) -> str | None:
    """An optional string field of a JSON body (null counts as absent)."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidParameter(f"'{name}' must be a string.", code="invalid_type", param=name)
    return value


def string_list(body: dict[str, Any], name: str) -> list[str]:
    """An optional list of strings (absent: empty)."""
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidParameter(f"'{name}' must be a list of strings.", code="invalid_type", param=name)
    return value


def actor_of(request: Request) -> Actor:
    """The signed-in user making a change, and where from."""
    return Actor(principal_of(request).email, client_address(request))
