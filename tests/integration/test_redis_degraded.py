"""Hourly limits when Redis dies or hangs mid-window: the limit holds, the wait is paid once, the log says it once.

The real Redis sits behind a loopback door (tests/integration/redis_door.py) the tests shut or jam. The slack of
the local fallback is 0 for one process: its local bucket starts from the last count Redis reported, so it admits
exactly the limit; with several processes, each may also admit what the others counted after it last heard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.limits import FIRST_PAUSE, MAX_PAUSE, WINDOW_SECONDS, RedisRateLimiter
from tests.integration.harness import wait_for
from tests.integration.redis_door import RedisDoor
from tests.unit.helpers import Clock

pytestmark = pytest.mark.redis

HOUR_START = 1_800_000_000 // WINDOW_SECONDS * WINDOW_SECONDS
LIMIT = 100  # the free tier's
SLACK = 0  # what one process may admit past the limit during an outage (see the module docstring)


@pytest.fixture
def clock() -> Clock:
    """Wall time and the back-off's monotonic time in one hand-moved clock, early in an hour."""
    return Clock(HOUR_START + 10)


@pytest.fixture
async def limiter(door: RedisDoor, clock: Clock) -> AsyncIterator[RedisRateLimiter]:
    """A limiter whose Redis client goes through the door, with a short socket timeout (0.5 s in the gateway)."""
    client = Redis.from_url(door.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    yield RedisRateLimiter(client, clock, clock)
    await client.aclose()


def window_key(tenant: str) -> str:
    return f"netra:rl:{{{tenant}}}:{HOUR_START // WINDOW_SECONDS}"


async def admitted(limiter: RedisRateLimiter, tenant: str, hits: int) -> int:
    return sum([(await limiter.hit(tenant, LIMIT)).allowed for _ in range(hits)])


@pytest.mark.parametrize("fault", ["down", "hung"])
async def test_redis_failing_after_60_never_lets_the_tenant_past_its_limit(
    door: RedisDoor, limiter: RedisRateLimiter, redis_token: str, fault: str
) -> None:
    tenant = f"ten_{redis_token}"
    assert await admitted(limiter, tenant, 60) == 60
    door.set("down" if fault == "down" else "hung")
    during = [await limiter.hit(tenant, LIMIT) for _ in range(80)]
    assert sum(r.allowed for r in during) + 60 <= LIMIT + SLACK
    assert sum(r.allowed for r in during) == 40  # and no fewer: the local bucket resumed at 60, not at 0
    assert during[0].remaining == 39 and during[-1].remaining == 0
    assert limiter.degraded is not None


async def test_when_redis_answers_again_the_local_count_is_added_to_it(
    door: RedisDoor, limiter: RedisRateLimiter, redis_client: Redis, clock: Clock, redis_token: str
) -> None:
    tenant = f"ten_{redis_token}"
    await admitted(limiter, tenant, 60)
    door.set("down")
    await admitted(limiter, tenant, 10)
    door.set("open")
    clock.advance(FIRST_PAUSE)
    back = await limiter.hit(tenant, LIMIT)
    assert back.remaining == LIMIT - 71
    assert int(await redis_client.get(window_key(tenant))) == 71  # other processes now see what was admitted
    assert limiter.degraded is None


async def test_a_hung_redis_is_waited_on_once_per_pause(
    door: RedisDoor, limiter: RedisRateLimiter, clock: Clock, redis_token: str
) -> None:
    tenant = f"ten_{redis_token}"
    door.set("hung")
    await admitted(limiter, tenant, 20)
    assert door.hung_connections == limiter.redis_calls == 1  # the first request paid the timeout, no other
    clock.advance(FIRST_PAUSE - 0.1)
    await admitted(limiter, tenant, 5)
    assert door.hung_connections == 1
    clock.advance(0.1)
    await asyncio.gather(*(limiter.hit(tenant, LIMIT) for _ in range(10)))  # a probe in flight: the rest go local
    assert door.hung_connections == limiter.redis_calls == 2
    clock.advance(2 * FIRST_PAUSE - 0.1)  # the pause doubled after the failed probe
    await admitted(limiter, tenant, 5)
    assert door.hung_connections == 2
    clock.advance(0.1)
    await admitted(limiter, tenant, 5)
    assert door.hung_connections == 3


async def test_the_pause_stops_doubling_at_its_cap(
    door: RedisDoor, limiter: RedisRateLimiter, clock: Clock, redis_token: str
) -> None:
    door.set("down")
    for _ in range(8):
        await limiter.hit(f"ten_{redis_token}", LIMIT)
        clock.advance(MAX_PAUSE)
    assert limiter.outage.pause == MAX_PAUSE
    calls = limiter.redis_calls
    clock.advance(-0.1)  # just before the next probe is due: a cap of MAX_PAUSE, not more
    await limiter.hit(f"ten_{redis_token}", LIMIT)
    assert limiter.redis_calls == calls
    clock.advance(0.1)
    await limiter.hit(f"ten_{redis_token}", LIMIT)
    assert limiter.redis_calls == calls + 1 and limiter.outage.pause == MAX_PAUSE


async def test_an_outage_is_logged_once_and_so_is_the_recovery(
    door: RedisDoor, limiter: RedisRateLimiter, clock: Clock, redis_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="netra.limits")
    tenant = f"ten_{redis_token}"
    await admitted(limiter, tenant, 3)
    door.set("down")
    for _ in range(4):  # many requests and several failed probes
        await admitted(limiter, tenant, 10)
        clock.advance(MAX_PAUSE)
    door.set("open")
    await admitted(limiter, tenant, 10)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "netra.limits"]
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert "counting rate limits locally" in lines[0][1] and "answers again" in lines[1][1]


async def test_a_probe_whose_request_was_cancelled_does_not_stop_later_probes(
    door: RedisDoor, limiter: RedisRateLimiter, clock: Clock, redis_token: str
) -> None:
    tenant = f"ten_{redis_token}"
    door.set("hung")
    await limiter.hit(tenant, LIMIT)
    clock.advance(FIRST_PAUSE)
    probe = asyncio.create_task(limiter.hit(tenant, LIMIT))
    assert await wait_for(lambda: door.hung_connections == 2)
    probe.cancel()  # the client left while its request probed Redis
    with pytest.raises(asyncio.CancelledError):
        await probe
    door.set("open")
    assert (await limiter.hit(tenant, LIMIT)).remaining == LIMIT - 2  # probed again, not counted locally forever
    assert limiter.degraded is None
