"""The response cache in a real Redis: shared by gateway processes, expiring with the policy's TTL, bypassed when
Redis is down or hung (each outage paid once per pause, as the rate limiter does), never failing a request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import generate_latest
from redis.asyncio import Redis

from core.metrics import GatewayMetrics
from core.settings import Settings
from gateway.cache import CachedEntry, CacheUnavailable, RedisCache, cache_key, open_cache
from gateway.limits import FIRST_PAUSE, RedisRateLimiter
from tests.integration.conftest import REDIS_URL
from tests.integration.harness import wait_for
from tests.integration.redis_door import RedisDoor
from tests.unit.helpers import Clock

pytestmark = pytest.mark.redis

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
ENTRY = CachedEntry("chat/completions", b'{"id": "chatcmpl-1"}', 12, 3, 0, True, 1_750_000_000.5, "req-1", "gpt-4o")


def key(tenant: str) -> str:
    return cache_key(tenant, "chat/completions", BODY)


@pytest.fixture
async def second_client(redis_client: Redis) -> AsyncIterator[Redis]:
    """Another connection pool, as a second gateway process would have."""
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def behind_door(door: RedisDoor, clock: Clock) -> AsyncIterator[RedisCache]:
    """A cache whose Redis client goes through the door, with a short socket timeout (0.5 s in the gateway)."""
    client = Redis.from_url(door.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    yield RedisCache(client, clock)
    await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_an_entry_stored_by_one_process_is_found_by_another(
    redis_client: Redis, second_client: Redis, redis_token: str
) -> None:
    tenant = f"ten_{redis_token}"
    cache = open_cache(Settings(_env_file=None), redis_client)  # Redis configured: the shared cache
    assert isinstance(cache, RedisCache)
    await cache.put(key(tenant), ENTRY, 3600)
    assert await RedisCache(second_client).get(key(tenant)) == ENTRY
    assert await RedisCache(second_client).get(key(f"other_{redis_token}")) is None


async def test_the_entry_expires_with_the_policys_ttl(redis_client: Redis, redis_token: str) -> None:
    cache = RedisCache(redis_client)
    await cache.put(key(f"ten_{redis_token}"), ENTRY, 90.2)  # Redis counts whole seconds: rounded up
    assert 90 <= await redis_client.ttl(key(f"ten_{redis_token}")) <= 91
    assert CachedEntry.from_bytes(await redis_client.get(key(f"ten_{redis_token}"))) == ENTRY


async def test_a_value_that_is_not_an_entry_is_a_miss(redis_client: Redis, redis_token: str) -> None:
    await redis_client.set(key(f"ten_{redis_token}"), b"left by an older Netra")
    assert await RedisCache(redis_client).get(key(f"ten_{redis_token}")) is None


async def test_redis_down_is_a_bypass_counted_by_reason(
    door: RedisDoor, behind_door: RedisCache, clock: Clock, redis_token: str
) -> None:
    metrics = GatewayMetrics()
    door.set("down")
    reasons = []
    for _ in range(5):
        with pytest.raises(CacheUnavailable) as caught:
            await behind_door.get(key(f"ten_{redis_token}"))
        metrics.child(metrics.cache_bypass, caught.value.reason).inc()  # what the request path does
        reasons.append(caught.value.reason)
    assert reasons == ["redis_error"] + ["redis_backoff"] * 4
    assert behind_door.redis_calls == 1  # the failure was noticed once; the others did not try Redis
    assert behind_door.degraded is not None
    scraped = generate_latest(metrics.registry).decode()
    assert 'netra_cache_bypass_total{reason="redis_backoff"} 4.0' in scraped
    door.set("open")
    clock.advance(FIRST_PAUSE)
    await behind_door.put(key(f"ten_{redis_token}"), ENTRY, 60)
    assert await behind_door.get(key(f"ten_{redis_token}")) == ENTRY and behind_door.degraded is None


async def test_a_hung_redis_is_waited_on_once_per_pause(
    door: RedisDoor, behind_door: RedisCache, clock: Clock, redis_token: str
) -> None:
    door.set("hung")
    with pytest.raises(CacheUnavailable, match="redis_timeout"):
        await behind_door.get(key(f"ten_{redis_token}"))
    for _ in range(10):
        with pytest.raises(CacheUnavailable, match="redis_backoff"):
            await behind_door.put(key(f"ten_{redis_token}"), ENTRY, 60)
    assert door.hung_connections == behind_door.redis_calls == 1
    clock.advance(FIRST_PAUSE)
    with pytest.raises(CacheUnavailable, match="redis_timeout"):
        await behind_door.get(key(f"ten_{redis_token}"))
    assert door.hung_connections == behind_door.redis_calls == 2


async def test_a_probe_whose_request_was_cancelled_does_not_stop_later_probes(
    door: RedisDoor, behind_door: RedisCache, clock: Clock, redis_token: str
) -> None:
    door.set("hung")
    with pytest.raises(CacheUnavailable):
        await behind_door.get(key(f"ten_{redis_token}"))
    clock.advance(FIRST_PAUSE)
    probe = asyncio.create_task(behind_door.get(key(f"ten_{redis_token}")))
    assert await wait_for(lambda: door.hung_connections == 2)
    probe.cancel()  # the client left while its request probed Redis
    with pytest.raises(asyncio.CancelledError):
        await probe
    door.set("open")
    assert await behind_door.get(key(f"ten_{redis_token}")) is None  # probed again: a plain miss
    assert behind_door.degraded is None


async def test_a_back_off_shared_with_the_rate_limiter_pays_one_timeout_for_both(
    door: RedisDoor, clock: Clock, redis_token: str
) -> None:
    client = Redis.from_url(door.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        limiter = RedisRateLimiter(client, clock, clock)
        cache = RedisCache(client, clock, outage=limiter.outage)
        door.set("hung")
        with pytest.raises(CacheUnavailable, match="redis_timeout"):
            await cache.get(key(f"ten_{redis_token}"))
        assert (await limiter.hit(f"ten_{redis_token}", 10)).allowed  # counted locally, without waiting on Redis
    finally:
        await client.aclose()
    assert door.hung_connections == 1 and limiter.redis_calls == 0
