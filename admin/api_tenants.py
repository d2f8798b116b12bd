"""REST API: tenants (list, create, change tier, suspend, activate) and their keys (list, create once, revoke)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin.api_params import actor_of, choice, optional_string, page_of, paged, string_list
from admin.api_schemas import NEW_KEY, STRING, obj
from admin.apispec import PAGING, Endpoint, Operation, ok, path_param, query_enum, ref
from admin.apispec import page_of as page_schema
from admin.body import read_object, string_field
from admin.services import tenants
from admin.state import get_state
from core.errors import InvalidParameter
from core.models import TIERS

TAG = "tenants"
TENANT_ID = path_param("tenant_id", "the tenant's id (ten_…)")


async def tenants_list(request: Request) -> Response:
    """Tenants, oldest first, optionally of one status."""
    status = choice(request, "status", tenants.TENANT_STATUSES)
    rows = await tenants.list_tenants(get_state(request).sessions, status)
    return JSONResponse(paged(rows, page_of(request), tenants.tenant_dict))


async def tenants_create(request: Request) -> Response:
    """Create a tenant from {"name", "tier"} (tier defaults to free)."""
    body = await read_object(request)
    name, tier = string_field(body, "name"), optional_string(body, "tier") or "free"
    tenant = await tenants.create_tenant(get_state(request).sessions, actor_of(request), name, tier)
    return JSONResponse(tenants.tenant_dict(tenant), status_code=201)


async def tenants_get(request: Request) -> Response:
    """One tenant."""
    tenant = await tenants.get_tenant(get_state(request).sessions, request.path_params["tenant_id"])
    return JSONResponse(tenants.tenant_dict(tenant))


async def tenants_tier(request: Request) -> Response:
    """Move a tenant to another tier."""
    tier = string_field(await read_object(request), "tier")
    tenant = await tenants.set_tier(get_state(request).sessions, actor_of(request), request.path_params["tenant_id"],
                                    tier)
    return JSONResponse(tenants.tenant_dict(tenant))


async def tenants_suspend(request: Request) -> Response:
    """Suspend a tenant: its keys are refused (403 tenant_suspended) until it is activated."""
    tenant = await tenants.set_status(get_state(request).sessions, actor_of(request),
                                      request.path_params["tenant_id"], "suspended")
    return JSONResponse(tenants.tenant_dict(tenant))


async def tenants_activate(request: Request) -> Response:
    """Reactivate a suspended tenant."""
    tenant = await tenants.set_status(get_state(request).sessions, actor_of(request),
                                      request.path_params["tenant_id"], "active")
    return JSONResponse(tenants.tenant_dict(tenant))


async def keys_list(request: Request) -> Response:
    """A tenant's keys: prefixes only (the keys themselves are never stored)."""
    keys = await tenants.list_keys(get_state(request).sessions, request.path_params["tenant_id"])
    return JSONResponse(paged(keys, page_of(request), tenants.key_dict))


async def keys_create(request: Request) -> Response:
    """Create a key: the answer holds the key itself, this once."""
    body = await read_object(request)
    expires_in = body.get("expires_in")
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, str | int)):
        raise InvalidParameter("'expires_in' must be a duration such as 30d, or seconds.", param="expires_in")
    expiry = tenants.check_expiry(expires_in)
    key, plaintext = await tenants.create_key(get_state(request).sessions, actor_of(request),
                                              request.path_params["tenant_id"], string_list(body, "models"), expiry)
    return JSONResponse({**tenants.key_dict(key), "key": plaintext}, status_code=201)


async def keys_revoke(request: Request) -> Response:
    """Revoke a key: calls with it are refused at once (after the gateway's short key cache)."""
    key = await tenants.revoke_key(get_state(request).sessions, actor_of(request), request.path_params["key_id"])
    return JSONResponse(tenants.key_dict(key))


TENANT_BODY = obj({"name": {**STRING, "maxLength": 200}, "tier": {"enum": list(TIERS), "default": "free"}},
                  required=("name",))
KEY_BODY = obj({
    "models": {"type": "array", "items": STRING, "description": "models it may use; empty or absent: every model"},
    "expires_in": {"anyOf": [STRING, {"type": "integer"}], "description": "30d, 12h, 90m, 3600s, or seconds"},
}, required=())
ENDPOINTS = [
    Endpoint("GET", "/api/tenants", tenants_list, "finance", Operation(
        "List tenants", TAG, (query_enum("status", tenants.TENANT_STATUSES, "only tenants of this status"), *PAGING),
        responses=ok(page_schema(ref("Tenant"))))),
    Endpoint("POST", "/api/tenants", tenants_create, "admin", Operation(
        "Create a tenant", TAG, body=TENANT_BODY, responses=ok(ref("Tenant"), 201))),
    Endpoint("GET", "/api/tenants/{tenant_id}", tenants_get, "finance", Operation(
        "Show a tenant", TAG, (TENANT_ID,), responses=ok(ref("Tenant")))),
    Endpoint("POST", "/api/tenants/{tenant_id}/tier", tenants_tier, "admin", Operation(
        "Change a tenant's tier", TAG, (TENANT_ID,), body=obj({"tier": {"enum": list(TIERS)}}),
        responses=ok(ref("Tenant")))),
    Endpoint("POST", "/api/tenants/{tenant_id}/suspend", tenants_suspend, "admin", Operation(
        "Suspend a tenant", TAG, (TENANT_ID,), responses=ok(ref("Tenant")))),
    Endpoint("POST", "/api/tenants/{tenant_id}/activate", tenants_activate, "admin", Operation(
        "Reactivate a tenant", TAG, (TENANT_ID,), responses=ok(ref("Tenant")))),
    Endpoint("GET", "/api/tenants/{tenant_id}/keys", keys_list, "finance", Operation(
        "List a tenant's keys (prefixes only)", TAG, (TENANT_ID, *PAGING), responses=ok(page_schema(ref("ApiKey"))))),
    Endpoint("POST", "/api/tenants/{tenant_id}/keys", keys_create, "admin", Operation(
        "Create a key (shown once)", TAG, (TENANT_ID,), body=KEY_BODY, responses=ok(NEW_KEY, 201))),
    Endpoint("POST", "/api/keys/{key_id}/revoke", keys_revoke, "admin", Operation(
        "Revoke a key", TAG, (path_param("key_id", "the key's id (key_…)"),), responses=ok(ref("ApiKey")))),
]
