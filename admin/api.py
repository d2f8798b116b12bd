"""The REST API's slices composed: their routes, their permission entries, and every /api OpenAPI operation."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from starlette.routing import BaseRoute

from admin import api_analytics, api_foundation, api_invoices, api_policies, api_tenants
from admin.apispec import Operation, operations_of, permissions_of, routes_of

ENDPOINTS = [*api_tenants.ENDPOINTS, *api_policies.ENDPOINTS, *api_invoices.ENDPOINTS, *api_analytics.ENDPOINTS]
OPENAPI_PATH = "/api/openapi.json"
# The description of the API holds no data: anyone may read it, as tools that generate clients expect.
PERMISSIONS: Mapping[tuple[str, str], str] = MappingProxyType(
    {**permissions_of(ENDPOINTS), ("GET", OPENAPI_PATH): "public"}
)
OPERATIONS: Mapping[tuple[str, str], Operation] = MappingProxyType(
    {**api_foundation.OPERATIONS, **operations_of(ENDPOINTS)}
)


def routes() -> list[BaseRoute]:
    """The REST API's routes (the OpenAPI document's own route is listed by admin/routes.py)."""
    return routes_of(ENDPOINTS)
