"""REST API: tenants and keys, on SQLite and PostgreSQL: every write audited, keys shown once, refusals enveloped."""

from __future__ import annotations

import pytest

from core.keys import hash_key
from core.tenants import find_key
from tests.integration import admin_api_harness as harness
from tests.integration.admin_api_harness import HOSTILE, Api

api, database, sqlite_sessions = harness.api, harness.database, harness.sqlite_sessions  # the harness's fixtures

UNKNOWN_TENANT = "ten_0000000000000000"


async def create(api: Api, name: str, tier: str = "early") -> dict[str, object]:
    tenant: dict[str, object] = await api.ok("POST", "/api/tenants", json={"name": name, "tier": tier}, status=201)
    return tenant


async def test_create_list_show_change_tier_suspend_and_activate(api: Api) -> None:
    tenant = await create(api, "acme")
    assert (tenant["name"], tenant["tier"], tenant["status"], tenant["hourly_request_limit"]) == (
        "acme", "early", "active", 1000)
    url = f"/api/tenants/{tenant['id']}"
    assert await api.ok("GET", url, "finance") == tenant
    moved = await api.ok("POST", f"{url}/tier", json={"tier": "enterprise"})
    assert (moved["tier"], moved["hourly_request_limit"]) == ("enterprise", None)
    assert (await api.ok("POST", f"{url}/suspend"))["status"] == "suspended"
    listed = await api.ok("GET", "/api/tenants?status=suspended", "finance")
    assert [t["id"] for t in listed["data"]] == [tenant["id"]] and listed["total"] == 1
    assert (await api.ok("POST", f"{url}/activate"))["status"] == "active"
    assert (await api.ok("GET", "/api/tenants?status=suspended"))["data"] == []


async def test_every_tenant_change_is_audited_with_before_and_after(api: Api) -> None:
    tenant = await create(api, "acme", "free")
    url = f"/api/tenants/{tenant['id']}"
    await api.ok("POST", f"{url}/tier", json={"tier": "mid"})
    await api.ok("POST", f"{url}/suspend")
    await api.ok("POST", f"{url}/suspend")  # already suspended: nothing changes, nothing is recorded
    (created,) = await api.audit("tenant.create")
    assert (created["actor"], created["target_id"], created["before"]) == ("admin@example.com", tenant["id"], None)
    assert created["after"] == tenant and created["address"] == "203.0.113.7"
    (tier,) = await api.audit("tenant.tier")
    assert (tier["before"]["tier"], tier["after"]["tier"]) == ("free", "mid")
    (suspended,) = await api.audit("tenant.suspend")
    assert (suspended["before"]["status"], suspended["after"]["status"]) == ("active", "suspended")


async def test_hostile_names_round_trip_as_data(api: Api) -> None:
    tenant = await create(api, HOSTILE)
    assert tenant["name"] == HOSTILE
    response = await api.call("GET", "/api/tenants")
    assert response.headers["content-type"] == "application/json"
    assert [t["name"] for t in response.json()["data"]] == [HOSTILE]
    (entry,) = await api.audit("tenant.create")
    assert entry["after"]["name"] == HOSTILE


async def test_bad_input_is_a_400_naming_the_field(api: Api) -> None:
    await api.refused("POST", "/api/tenants", "admin", 400, "missing_required_parameter", "name", json={})
    await api.refused("POST", "/api/tenants", "admin", 400, "invalid_value", "name", json={"name": "  "})
    await api.refused("POST", "/api/tenants", "admin", 400, "invalid_value", "name", json={"name": "x" * 201})
    await api.refused("POST", "/api/tenants", "admin", 400, "invalid_value", "name", json={"name": "a\nb"})
    await api.refused("POST", "/api/tenants", "admin", 400, "invalid_value", "tier",
                      json={"name": "acme", "tier": "platinum"})
    await api.refused("POST", "/api/tenants", "admin", 400, "invalid_type", "name", json={"name": 7})
    await api.refused("POST", "/api/tenants", "admin", 400, "invalid_json", None, content=b"{not json")
    await api.refused("GET", "/api/tenants?status=gone", "admin", 400, "invalid_value", "status")
    await api.refused("GET", "/api/tenants?limit=0", "admin", 400, "invalid_type", "limit")
    assert (await api.ok("GET", "/api/tenants"))["total"] == 0


async def test_a_taken_name_is_a_409(api: Api) -> None:
    await create(api, "acme")
    await api.refused("POST", "/api/tenants", "admin", 409, "tenant_exists", "name", json={"name": "acme"})
    assert len(await api.audit("tenant.create")) == 1


async def test_unknown_ids_are_404(api: Api) -> None:
    url = f"/api/tenants/{UNKNOWN_TENANT}"
    await api.refused("GET", url, "admin", 404, "tenant_not_found", "tenant_id")
    await api.refused("POST", f"{url}/tier", "admin", 404, "tenant_not_found", "tenant_id", json={"tier": "mid"})
    await api.refused("POST", f"{url}/suspend", "admin", 404, "tenant_not_found", "tenant_id")
    await api.refused("GET", f"{url}/keys", "admin", 404, "tenant_not_found", "tenant_id")
    await api.refused("POST", f"{url}/keys", "admin", 404, "tenant_not_found", "tenant_id", json={})
    await api.refused("POST", "/api/keys/key_0000000000000000/revoke", "admin", 404, "key_not_found", "key_id")
    assert await api.audit("key.create") == []


async def test_roles_anonymous_viewer_and_finance_are_refused_where_the_table_says(api: Api) -> None:
    tenant = await create(api, "acme")
    await api.refused("GET", "/api/tenants", None, 401, "missing_token")
    await api.refused("GET", "/api/tenants", "viewer", 403, "insufficient_role")
    await api.refused("POST", "/api/tenants", "finance", 403, "insufficient_role", json={"name": "other"})
    url = f"/api/tenants/{tenant['id']}"
    await api.refused("POST", f"{url}/suspend", "finance", 403, "insufficient_role")
    await api.refused("POST", f"{url}/keys", "finance", 403, "insufficient_role", json={})
    await api.refused("GET", f"{url}/keys", "viewer", 403, "insufficient_role")
    listed = await api.ok("GET", "/api/tenants", "finance")
    assert [(t["name"], t["status"]) for t in listed["data"]] == [("acme", "active")]
    assert await api.audit("key.create") == []


async def test_a_key_is_shown_once_then_only_its_prefix(api: Api) -> None:
    tenant = await create(api, "acme")
    url = f"/api/tenants/{tenant['id']}/keys"
    made = await api.ok("POST", url, json={"models": ["gpt-4o-mini"], "expires_in": "30d"}, status=201)
    key = made.pop("key")
    assert key.startswith("nk-") and key.startswith(made["prefix"]) and len(key) > len(made["prefix"]) + 20
    assert (made["status"], made["models"], made["tenant_id"]) == ("active", ["gpt-4o-mini"], tenant["id"])
    async with api.admin.sessions() as session:
        record = await find_key(session, hash_key(key))
    assert record is not None and record.key_id == made["id"]  # the key shown is the key the gateway accepts
    listing = await api.call("GET", url, "finance")
    assert listing.json()["data"] == [made] and key not in listing.text
    audit_text = (await api.call("GET", "/api/audit")).text
    assert key not in audit_text and made["prefix"] in audit_text


async def test_revoking_a_key_is_audited_once(api: Api) -> None:
    tenant = await create(api, "acme")
    made = await api.ok("POST", f"/api/tenants/{tenant['id']}/keys", json={}, status=201)
    revoked = await api.ok("POST", f"/api/keys/{made['id']}/revoke")
    assert revoked["status"] == "revoked" and revoked["revoked_at"] is not None and "key" not in revoked
    assert (await api.ok("POST", f"/api/keys/{made['id']}/revoke"))["revoked_at"] == revoked["revoked_at"]
    (entry,) = await api.audit("key.revoke")
    assert (entry["before"]["status"], entry["after"]["status"]) == ("active", "revoked")
    assert entry["after"]["revoked_at"] == revoked["revoked_at"]


@pytest.mark.parametrize("body, param", [
    ({"models": "gpt-4o"}, "models"), ({"models": [""]}, "models"), ({"expires_in": "soon"}, "expires_in"),
    ({"expires_in": True}, "expires_in"), ({"expires_in": 0}, "expires_in"),
])
async def test_bad_key_requests_are_400(api: Api, body: dict[str, object], param: str) -> None:
    tenant = await create(api, "acme")
    error = await api.call("POST", f"/api/tenants/{tenant['id']}/keys", json=body)
    assert error.status_code == 400 and error.json()["error"]["param"] == param
    assert (await api.ok("GET", f"/api/tenants/{tenant['id']}/keys"))["data"] == []


async def test_lists_are_paged(api: Api) -> None:
    ids = [(await create(api, f"t{i}"))["id"] for i in range(5)]
    first = await api.ok("GET", "/api/tenants?limit=2")
    rest = await api.ok("GET", "/api/tenants?limit=2&offset=4")
    assert [t["id"] for t in first["data"]] == ids[:2] and first["has_more"] and first["total"] == 5
    assert [t["id"] for t in rest["data"]] == ids[4:] and not rest["has_more"]
