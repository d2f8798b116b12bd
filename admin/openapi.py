"""GET /api/openapi.json: an OpenAPI 3.1 document generated from the app's routes, the permission table and the
operations the slices describe (admin/api.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from admin import api_schemas
from admin.api import OPERATIONS
from admin.apispec import JSON, Operation, Param, Schema, ref
from admin.permissions import PERMISSIONS, PUBLIC

INFO = {
    "title": "Netra admin API",
    "version": "1",
    "description": "Tenants, keys, policies, invoices and users. Sign in with POST /api/auth/login and send "
                   "`Authorization: Bearer <access token>`. Errors use the OpenAI envelope. Each operation's "
                   "`x-required-role` is the weakest role admitted (viewer < finance < admin).",
}
ERROR_TEXTS = {400: "Bad input (the envelope's param names the field)", 401: "Not signed in",
               403: "The role may not do this", 404: "No such resource", 409: "The change conflicts with the state"}


def _param(param: Param) -> dict[str, Any]:
    return {"name": param.name, "in": param.where, "required": param.required, "description": param.description,
            "schema": param.schema}


def _errors(operation: Operation, role: str, method: str) -> Iterable[int]:
    if operation.body is not None or any(p.where == "query" for p in operation.params):
        yield 400
    if role != PUBLIC:
        yield from (401, 403)
    if any(p.where == "path" for p in operation.params):
        yield 404
    if method != "GET" and role != PUBLIC:
        yield 409


def operation_object(route: Route, method: str, operation: Operation, role: str) -> dict[str, Any]:
    """One operation of the document: parameters, body, answers (errors included), role and security."""
    responses: dict[str, Any] = {
        str(status): {"description": "Redirect" if 300 <= status < 400 else "Success",
                      "content": {media: {"schema": schema} for media, schema in by.items()}}
        for status, by in operation.responses.items()
    }
    for status in _errors(operation, role, method):
        responses[str(status)] = {"description": ERROR_TEXTS[status], "content": {JSON: {"schema": ref("Error")}}}
    found: dict[str, Any] = {
        "operationId": getattr(route.endpoint, "__name__", route.path), "summary": operation.summary,
        "tags": [operation.tag], "parameters": [_param(p) for p in operation.params], "responses": responses,
        "x-required-role": role, "security": [] if role == PUBLIC else [{"bearer": []}],
    }
    if operation.body is not None:
        found["requestBody"] = {"required": True, "content": {JSON: {"schema": operation.body}}}
    return found


def build(routes: Iterable[BaseRoute], permissions: Mapping[tuple[str, str], str],
          operations: Mapping[tuple[str, str], Operation]) -> dict[str, Any]:
    """The document: every /api route of `routes` with the operation described for it (none: summary only)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = operations.get((method, route.path)) or Operation(str(route.endpoint.__doc__ or ""), "other")
            role = permissions.get((method, route.path), "nobody")
            paths.setdefault(route.path, {})[method.lower()] = operation_object(route, method, operation, role)
    schemes: Schema = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    return {"openapi": "3.1.0", "info": INFO, "paths": paths,
            "components": {"schemas": api_schemas.components(), "securitySchemes": schemes}}


async def openapi_document(request: Request) -> Response:
    """The OpenAPI 3.1 document of this app's /api routes."""
    return JSONResponse(build(request.app.routes, PERMISSIONS, OPERATIONS))
