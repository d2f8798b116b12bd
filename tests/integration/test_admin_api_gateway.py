"""The promise end to end: a policy created and activated through the admin API is applied by a RUNNING gateway
on the same database within 2 s (by its poll of the change counter, or at once by the Redis notice), and stops
being applied as soon after it is retired."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from policies.store import CHANGES_CHANNEL
from tests.fake_upstream import FakeUpstream
from tests.integration import admin_api_harness as harness
from tests.integration.admin_api_harness import Api, Database, running_api
from tests.integration.conftest import REDIS_URL
from tests.integration.harness import Gateway, gateway_settings, running_gateway

WITHIN = 2.0  # the promise
POLICY = {"kind": "cache", "name": "acme's deterministic chat", "match": {"tenants": ["acme"]}, "ttl": "1h"}
sqlite_sessions = harness.sqlite_sessions  # the harness's fixture


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Database:
    """The test's settings (chDB and all) on SQLite, or on its own PostgreSQL database."""
    settings = request.getfixturevalue("settings")
    if request.param == "postgres":
        pg = settings.model_copy(update={"database_url": request.getfixturevalue("pg_url")})
        return Database(pg, request.getfixturevalue("sessions"))
    return Database(settings, request.getfixturevalue("sqlite_sessions"))


async def outcome(gateway: Gateway, who: str = "acme", text: str = "Hello there!") -> str:
    messages = [{"role": "user", "content": text}]
    response = await gateway.http.post("/v1/chat/completions", headers=gateway.auth(who),
                                       json={"model": "gpt-4o-mini", "messages": messages, "temperature": 0})
    assert response.status_code == 200, response.text
    return response.headers["x-netra-cache"]


async def outcome_within(gateway: Gateway, wanted: str, text: str) -> list[str]:
    """Send the same request until the gateway answers with `wanted`; fails after WITHIN seconds."""
    seen: list[str] = []
    try:
        async with asyncio.timeout(WITHIN):
            while not seen or seen[-1] != wanted:
                seen.append(await outcome(gateway, text=text))
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"no {wanted!r} within {WITHIN} s of the change: {seen}")
    return seen


async def check_policy_round_trip(api: Api, gateway: Gateway) -> None:
    assert await outcome(gateway) == "bypass"  # no policy yet: nothing is cached
    pid = (await api.ok("POST", "/api/policies", json=POLICY, status=201))["id"]
    assert await outcome(gateway) == "bypass"  # proposed is not applied
    await api.ok("POST", f"/api/policies/{pid}/activate")
    seen = await outcome_within(gateway, "hit", "Hello there!")
    assert seen[-2:] == ["miss", "hit"]  # stored by the first request after the change, served to the next
    assert await outcome(gateway, who="tiny") == "bypass"  # the policy names acme only
    await api.ok("POST", f"/api/policies/{pid}/retire")
    assert (await outcome_within(gateway, "bypass", "Something new"))[-1] == "bypass"


@pytest.fixture
async def gateway(database: Database, tmp_path: Path, fake_upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """The gateway on the database, polling the change counter at the default interval (1 s)."""
    async with running_gateway(gateway_settings(database.settings, tmp_path, fake_upstream), fake_upstream) as gw:
        yield gw


async def test_a_policy_activated_through_the_api_is_applied_by_a_running_gateway(
    database: Database, gateway: Gateway
) -> None:
    async with running_api(database) as api:
        await check_policy_round_trip(api, gateway)


async def subscribers(redis: Redis) -> int:
    counts = dict(await redis.pubsub_numsub(CHANGES_CHANNEL))
    return int(counts.get(CHANGES_CHANNEL.encode(), counts.get(CHANGES_CHANNEL, 0)))


@pytest.mark.redis
async def test_with_redis_the_notice_brings_the_change_without_the_poll(
    database: Database, tmp_path: Path, fake_upstream: FakeUpstream, redis_client: Redis
) -> None:
    settings = database.settings.model_copy(update={"redis_url": REDIS_URL})
    before = await subscribers(redis_client)
    # A poll far beyond the deadline: only the admin app's notice can bring the change in time.
    configured = gateway_settings(settings, tmp_path, fake_upstream, policy_poll_interval=600)
    async with running_gateway(configured, fake_upstream) as gateway:
        async with asyncio.timeout(10):
            while await subscribers(redis_client) <= before:  # the gateway listens for notices
                await asyncio.sleep(0.02)
        async with running_api(Database(settings, database.sessions)) as api:
            await check_policy_round_trip(api, gateway)
