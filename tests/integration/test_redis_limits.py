"""Hourly limits counted in a real Redis: shared by every gateway process, local when Redis is away."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from gateway.limits import WINDOW_SECONDS, RedisRateLimiter
from tests.integration.conftest import REDIS_URL
from tests.unit.helpers import Clock, closed_port

pytestmark = pytest.mark.redis

HOUR_START = 1_800_000_000 // WINDOW_SECONDS * WINDOW_SECONDS


@pytest.fixture
def clock() -> Clock:
    return Clock(HOUR_START + 10)


@pytest.fixture
async def second_client(redis_client: Redis) -> AsyncIterator[Redis]:
    """Another connection pool, as a second gateway process would have."""
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_two_processes_share_one_count(
    redis_client: Redis, second_client: Redis, clock: Clock, redis_token: str
) -> None:
    tenant = f"ten_{redis_token}"
    one, two = RedisRateLimiter(redis_client, clock), RedisRateLimiter(second_client, clock)
    results = [await limiter.hit(tenant, 3) for limiter in (one, two, one, two)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert not (await one.hit(tenant, 3)).allowed


async def test_tenants_are_counted_apart(redis_client: Redis, clock: Clock, redis_token: str) -> None:
    limiter = RedisRateLimiter(redis_client, clock)
    await limiter.hit(f"ten_a_{redis_token}", 1)
    assert not (await limiter.hit(f"ten_a_{redis_token}", 1)).allowed
    assert (await limiter.hit(f"ten_b_{redis_token}", 1)).allowed


async def test_keys_carry_a_hash_tag_and_an_expiry(redis_client: Redis, clock: Clock, redis_token: str) -> None:
    tenant = f"ten_{redis_token}"
    limiter = RedisRateLimiter(redis_client, clock)
    await limiter.hit(tenant, 10)
    clock.advance(WINDOW_SECONDS)
    await limiter.hit(tenant, 10)
    keys = sorted([key.decode() async for key in redis_client.scan_iter(match=f"*{redis_token}*")])
    assert len(keys) == 2
    assert all(f"{{{tenant}}}" in key for key in keys)
    # Every window of a tenant lands on the slot of its hash tag: one cluster node serves the tenant.
    assert {key_slot(key.encode()) for key in keys} == {key_slot(tenant.encode())}
    for key in keys:
        ttl = await redis_client.ttl(key)
        assert WINDOW_SECONDS < ttl <= 2 * WINDOW_SECONDS
        assert int(await redis_client.get(key)) == 1


async def test_a_new_hour_starts_a_new_count(redis_client: Redis, clock: Clock, redis_token: str) -> None:
    tenant = f"ten_{redis_token}"
    limiter = RedisRateLimiter(redis_client, clock)
    await limiter.hit(tenant, 1)
    assert not (await limiter.hit(tenant, 1)).allowed
    clock.now = HOUR_START + WINDOW_SECONDS
    fresh = await limiter.hit(tenant, 1)
    assert fresh.allowed and fresh.remaining == 0
    assert {k.decode(): v.decode() for k, v in fresh.headers()}["x-ratelimit-remaining-requests"] == "0"


async def test_unreachable_redis_falls_back_to_local_counting(clock: Clock) -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")  # as the gateway's lifespan builds it
    try:
        limiter = RedisRateLimiter(client, clock, clock)
        results = [await limiter.hit("ten_local", 2) for _ in range(3)]
    finally:
        await client.aclose()
    assert [r.allowed for r in results] == [True, True, False]
    assert [r.remaining for r in results] == [1, 0, 0]
    assert limiter.redis_calls == 1  # the failure was noticed once; the other requests did not try Redis
    assert limiter.degraded is not None and "ConnectionError" in limiter.degraded
