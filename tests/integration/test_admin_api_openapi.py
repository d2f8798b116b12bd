"""GET /api/openapi.json: every /api route of the app, with its method, parameters, schemas and required role."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.routing import Route

from admin.api import OPERATIONS
from admin.permissions import PERMISSIONS
from tests.integration import admin_api_harness as harness
from tests.integration.admin_api_harness import Api, Database, running_api

sqlite_sessions = harness.sqlite_sessions  # the harness's fixture


@pytest.fixture
async def api(settings: Any, sqlite_sessions: Any) -> AsyncIterator[Api]:
    async with running_api(Database(settings, sqlite_sessions)) as running:
        yield running


def api_routes(api: Api) -> Iterator[tuple[str, str]]:
    """(method, path) of every /api route the app serves."""
    for route in api.admin.app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/"):
            for method in (route.methods or set()) - {"HEAD"}:
                yield method, route.path


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


@pytest.fixture
async def document(api: Api) -> dict[str, Any]:
    response = await api.call("GET", "/api/openapi.json", None)  # public: tools read it before signing in
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    found: dict[str, Any] = response.json()
    return found


async def test_every_api_route_is_described_with_its_role(api: Api, document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    served = set(api_routes(api))
    described = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert served == described and len(served) > 25
    assert set(OPERATIONS) == served  # each described from the table, none left over
    for method, path in served:
        operation = document["paths"][path][method.lower()]
        assert operation["summary"] == OPERATIONS[method, path].summary
        assert operation["x-required-role"] == PERMISSIONS[method, path], (method, path)
        assert operation["security"] == ([] if PERMISSIONS[method, path] == "public" else [{"bearer": []}])


async def test_parameters_bodies_and_answers_are_described(document: dict[str, Any]) -> None:
    operation_ids = []
    for path, ops in document["paths"].items():
        templated = set(re.findall(r"\{(\w+)\}", path))
        for method, operation in ops.items():
            operation_ids.append(operation["operationId"])
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == templated, (method, path)
            success = [s for s in operation["responses"] if s.startswith(("2", "3"))]  # 3xx: a sign-in redirect
            assert success, (method, path)
            if operation["x-required-role"] != "public":
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
            if templated:
                assert "404" in operation["responses"], (method, path)
    assert len(operation_ids) == len(set(operation_ids))
    writes = {"/api/tenants": "post", "/api/policies": "post", "/api/policies/{policy_id}": "put",
              "/api/invoices": "post", "/api/tenants/{tenant_id}/tier": "post"}
    for path, method in writes.items():
        assert document["paths"][path][method]["requestBody"]["required"] is True, path


async def test_schemas_resolve_and_the_policy_document_is_the_file_format(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for ref in set(refs(document)):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    body = document["paths"]["/api/policies"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PolicyDocument"}
    cache = schemas["CachePolicy"]
    assert {"kind", "name", "ttl"} <= set(cache["required"]) and cache["additionalProperties"] is False
    assert not {"id", "version", "status", "created_at"} & set(cache["properties"])  # the store assigns those
    new_key = document["paths"]["/api/tenants/{tenant_id}/keys"]["post"]["responses"]["201"]
    assert "key" in new_key["content"]["application/json"]["schema"]["allOf"][1]["properties"]
    download = document["paths"]["/api/invoices/{number}/download"]["get"]["responses"]["200"]["content"]
    assert set(download) == {"application/json", "text/csv", "application/pdf"}
