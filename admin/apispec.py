"""The REST API's own route table: each endpoint's handler, the weakest role it admits, and its OpenAPI operation.

A slice lists `Endpoint`s; its Starlette routes, its permission entries and its OpenAPI operations all come from
that one list, so the three cannot disagree. Schemas are JSON Schema (OpenAPI 3.1) as plain dicts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

Handler = Callable[[Request], Awaitable[Response]]
Schema = dict[str, Any]
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter."""

    name: str
    where: Literal["path", "query", "header"]
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """What OpenAPI says of one method on one path: its parameters, request body and answers."""

    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    body: Schema | None = None
    # status → media type → schema; errors are added by the document builder from the role and parameters.
    responses: dict[int, dict[str, Schema]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A route of the REST API: method, path, handler, the weakest role admitted, and its operation."""

    method: str
    path: str
    handler: Handler
    role: str
    operation: Operation


def routes_of(endpoints: Sequence[Endpoint]) -> list[BaseRoute]:
    """The Starlette routes, in the order listed (a fixed path before a templated one it would match)."""
    return [Route(e.path, e.handler, methods=[e.method]) for e in endpoints]


def permissions_of(endpoints: Sequence[Endpoint]) -> dict[tuple[str, str], str]:
    """The permission entries."""
    return {(e.method, e.path): e.role for e in endpoints}


def operations_of(endpoints: Sequence[Endpoint]) -> dict[tuple[str, str], Operation]:
    """The OpenAPI operations."""
    return {(e.method, e.path): e.operation for e in endpoints}


def ref(name: str) -> Schema:
    """A reference to a named schema of the document's components."""
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(item: Schema) -> Schema:
    """A page of a list: the items, the total, and the slice returned."""
    return {
        "type": "object", "required": ["object", "data", "total", "limit", "offset", "has_more"],
        "properties": {
            "object": {"const": "list"}, "data": {"type": "array", "items": item}, "total": {"type": "integer"},
            "limit": {"type": "integer"}, "offset": {"type": "integer"}, "has_more": {"type": "boolean"},
        },
    }


def path_param(name: str, description: str) -> Param:
    """A required string path parameter."""
    return Param(name, "path", {"type": "string"}, description, required=True)


def query_enum(name: str, choices: Sequence[str], description: str) -> Param:
    """An optional query parameter taking one of `choices`."""
    return Param(name, "query", {"type": "string", "enum": list(choices)}, description)


PAGING = (
    Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
    Param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}, "items to skip"),
)


def ok(schema: Schema, status: int = 200) -> dict[int, dict[str, Schema]]:
    """A JSON success answer."""
    return {status: {JSON: schema}}
