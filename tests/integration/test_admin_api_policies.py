"""REST API: policies through the store the CLI uses (create, edit, activate, retire, history, diff), audited."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from policies.store import CHANGES_CHANNEL
from tests.integration import admin_api_harness as harness
from tests.integration.admin_api_harness import HOSTILE, Api, running_api
from tests.integration.conftest import REDIS_URL

api, database, sqlite_sessions = harness.api, harness.database, harness.sqlite_sessions  # the harness's fixtures

CACHE: dict[str, Any] = {"kind": "cache", "name": "deterministic chat", "match": {"tenants": ["acme"]}, "ttl": "1h",
                         "rationale": "repeated prompts"}
ROUTE: dict[str, Any] = {"kind": "route", "name": "cheaper model", "match": {"models": ["gpt-4o"]},
                         "targets": [{"model": "gpt-4o-mini"}]}
UNKNOWN = "/api/policies/pol_0000000000000000"


async def create(api: Api, document: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = await api.ok("POST", "/api/policies", json=document, status=201)
    return created


async def test_create_returns_the_stored_policy_with_its_id(api: Api) -> None:
    created = await create(api, CACHE)
    assert created["id"].startswith("pol_") and (created["version"], created["status"]) == (1, "proposed")
    assert (created["kind"], created["name"], created["author"]) == ("cache", CACHE["name"], "human:admin@example.com")
    assert created["document"]["ttl"] == 3600 and created["document"]["match"]["tenants"] == ["acme"]
    shown = await api.ok("GET", f"/api/policies/{created['id']}", "viewer")
    assert shown["current"] == created and shown["versions"] == [created]
    assert [(e["action"], e["actor"]) for e in shown["events"]] == [("added", "human:admin@example.com")]


async def test_edit_activate_retire_with_history_and_diff(api: Api) -> None:
    pid = (await create(api, CACHE))["id"]
    url = f"/api/policies/{pid}"
    assert (await api.ok("POST", f"{url}/activate"))["status"] == "active"
    edited = await api.ok("PUT", url, json={**CACHE, "ttl": "15m", "priority": 5})
    assert (edited["version"], edited["status"], edited["document"]["ttl"]) == (2, "active", 900)
    shown = await api.ok("GET", url, "viewer")
    assert [(v["version"], v["status"]) for v in shown["versions"]] == [(1, "superseded"), (2, "active")]
    diff = await api.ok("GET", f"{url}/diff", "viewer")
    assert (diff["from"], diff["to"]) == (1, 2)
    assert {c["path"]: (c["before"], c["after"]) for c in diff["changes"]} == {"ttl": (3600, 900), "priority": (0, 5)}
    assert "-ttl: 3600\n" in diff["unified"] and "+ttl: 900\n" in diff["unified"]
    assert (await api.ok("GET", f"{url}/diff?from=2&to=2"))["changes"] == []
    assert (await api.ok("POST", f"{url}/retire"))["status"] == "retired"
    await api.refused("POST", f"{url}/activate", "admin", 409, "policy_retired", "policy_id")
    events = (await api.ok("GET", url))["events"]
    assert [e["action"] for e in events] == ["added", "activated", "edited", "activated", "retired"]


async def test_each_change_is_audited_with_before_and_after(api: Api) -> None:
    pid = (await create(api, CACHE))["id"]
    await api.ok("POST", f"/api/policies/{pid}/activate")
    await api.ok("POST", f"/api/policies/{pid}/activate")  # already active: no change, no entry
    await api.ok("PUT", f"/api/policies/{pid}", json={**CACHE, "ttl": 60})
    await api.ok("POST", f"/api/policies/{pid}/retire")
    (created,) = await api.audit("policy.create")
    assert (created["target_type"], created["target_id"], created["before"]) == ("policy", pid, None)
    assert created["after"]["status"] == "proposed"
    (activated,) = await api.audit("policy.activate")
    assert (activated["before"]["status"], activated["after"]["status"]) == ("proposed", "active")
    (edited,) = await api.audit("policy.edit")
    assert (edited["before"]["version"], edited["after"]["version"], edited["after"]["document"]["ttl"]) == (1, 2, 60)
    (retired,) = await api.audit("policy.retire")
    assert (retired["before"]["status"], retired["after"]["status"]) == ("active", "retired")


async def test_the_list_filters_by_kind_status_and_tenant(api: Api) -> None:
    acme = (await create(api, CACHE))["id"]
    everyone = (await create(api, ROUTE))["id"]
    other = (await create(api, {**CACHE, "name": "other", "match": {"tenants": ["globex"]}}))["id"]
    await api.ok("POST", f"/api/policies/{everyone}/activate")

    async def ids(query: str) -> list[str]:
        return [p["id"] for p in (await api.ok("GET", f"/api/policies{query}", "viewer"))["data"]]

    assert await ids("") == [acme, everyone, other]
    assert await ids("?kind=cache") == [acme, other]
    assert await ids("?status=active") == [everyone]
    assert await ids("?tenant=acme") == [acme, everyone]  # naming acme, or naming no tenant
    assert await ids("?kind=cache&tenant=globex&limit=1") == [other]
    await api.refused("GET", "/api/policies?kind=magic", "viewer", 400, "invalid_value", "kind")
    await api.refused("GET", "/api/policies?status=superseded", "viewer", 400, "invalid_value", "status")


@pytest.mark.parametrize("document, param", [
    ({**CACHE, "tll": "1h"}, "tll"),
    ({k: v for k, v in CACHE.items() if k != "ttl"}, "ttl"),
    ({**CACHE, "kind": "magic"}, "kind"),
    ({k: v for k, v in CACHE.items() if k != "kind"}, "kind"),
    ({**CACHE, "ttl": "soon"}, "ttl"),
    ({**CACHE, "match": {"tenants": []}}, "match.tenants"),
    ({**CACHE, "match": {"tenant": ["acme"]}}, "match.tenant"),
    ({**CACHE, "status": "active"}, "status"),
    ({**CACHE, "id": "pol_mine"}, "id"),
    ({**ROUTE, "targets": [{"model": "x", "weight": 0}]}, "targets[0].weight"),
    ({**CACHE, "name": "n" * 201}, None),
])
async def test_a_bad_document_is_a_400_naming_the_field(api: Api, document: dict[str, Any], param: str | None) -> None:
    response = await api.call("POST", "/api/policies", json=document)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param), error
    assert (await api.ok("GET", "/api/policies"))["total"] == 0


async def test_edit_keeps_the_kind_and_validates(api: Api) -> None:
    pid = (await create(api, CACHE))["id"]
    await api.refused("PUT", f"/api/policies/{pid}", "admin", 400, "invalid_value", "kind", json=ROUTE)
    await api.refused("PUT", f"/api/policies/{pid}", "admin", 400, "invalid_policy", "ttl",
                      json={**CACHE, "ttl": -5})
    await api.refused("PUT", f"/api/policies/{pid}", "admin", 400, "invalid_json", None, json=["not", "an object"])
    assert [v["version"] for v in (await api.ok("GET", f"/api/policies/{pid}"))["versions"]] == [1]


async def test_unknown_policies_and_versions_are_404(api: Api) -> None:
    for method, suffix in (("GET", ""), ("GET", "/diff"), ("POST", "/activate"), ("POST", "/retire")):
        await api.refused(method, f"{UNKNOWN}{suffix}", "admin", 404, "policy_not_found", "policy_id")
    await api.refused("PUT", UNKNOWN, "admin", 404, "policy_not_found", "policy_id", json=CACHE)
    pid = (await create(api, CACHE))["id"]
    await api.refused("GET", f"/api/policies/{pid}/diff?to=7", "admin", 404, "version_not_found", "to")
    await api.refused("GET", f"/api/policies/{pid}/diff?from=x", "admin", 400, "invalid_type", "from")
    assert len(await api.audit("policy.create")) == 1


async def test_viewer_and_finance_read_but_never_write(api: Api) -> None:
    pid = (await create(api, CACHE))["id"]
    for role in ("viewer", "finance"):
        await api.refused("POST", "/api/policies", role, 403, "insufficient_role", json=ROUTE)
        await api.refused("PUT", f"/api/policies/{pid}", role, 403, "insufficient_role", json=CACHE)
        await api.refused("POST", f"/api/policies/{pid}/activate", role, 403, "insufficient_role")
        await api.refused("POST", f"/api/policies/{pid}/retire", role, 403, "insufficient_role")
        assert (await api.ok("GET", f"/api/policies/{pid}", role))["current"]["status"] == "proposed"
    await api.refused("GET", "/api/policies", None, 401, "missing_token")


async def test_hostile_strings_in_a_policy_round_trip_as_data(api: Api) -> None:
    created = await create(api, {**CACHE, "name": HOSTILE, "rationale": HOSTILE, "match": {"tenants": [HOSTILE]}})
    listed = await api.ok("GET", "/api/policies", params={"tenant": HOSTILE})
    assert [(p["name"], p["document"]["rationale"]) for p in listed["data"]] == [(HOSTILE, HOSTILE)]
    assert created["document"]["match"]["tenants"] == [HOSTILE]


@pytest.mark.redis
async def test_a_change_is_announced_on_redis(database: harness.Database, redis_client: Redis) -> None:
    configured = harness.Database(database.settings.model_copy(update={"redis_url": REDIS_URL}), database.sessions)
    async with running_api(configured) as api, redis_client.pubsub() as pubsub:
        await pubsub.subscribe(CHANGES_CHANNEL)
        await pubsub.get_message(timeout=1.0)  # the subscription's confirmation
        pid = (await create(api, CACHE))["id"]
        await api.ok("POST", f"/api/policies/{pid}/activate")
        heard = []
        async with asyncio.timeout(5):
            while len(heard) < 2:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    heard.append(int(message["data"]))
    assert heard == sorted(heard) and heard[1] > heard[0]  # the counter after each change, in order
