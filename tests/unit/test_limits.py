"""Per-tenant hourly request limits counted in this process."""

from __future__ import annotations

import pytest

from core.errors import RateLimited
from gateway.limits import (
    FIRST_PAUSE,
    MAX_PAUSE,
    WINDOW_SECONDS,
    LimitResult,
    MemoryRateLimiter,
    RedisOutage,
    format_reset,
)
from tests.unit.helpers import Clock, assert_envelope

HOUR_START = 1_700_000_000 // WINDOW_SECONDS * WINDOW_SECONDS  # the start of some hour


def headers_of(result: LimitResult) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in result.headers()}


@pytest.fixture
def clock() -> Clock:
    return Clock(HOUR_START + 1)  # one second into the hour


@pytest.fixture
def limiter(clock: Clock) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock)


async def test_the_request_after_the_limit_is_refused(limiter: MemoryRateLimiter) -> None:
    results = [await limiter.hit("ten_a", 3) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert not (await limiter.hit("ten_a", 3)).allowed


async def test_headers_describe_the_bucket(limiter: MemoryRateLimiter) -> None:
    await limiter.hit("ten_a", 100)
    result = await limiter.hit("ten_a", 100)
    assert headers_of(result) == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "98",
        "x-ratelimit-reset-requests": "59m59s",
    }


async def test_reset_counts_down_to_the_end_of_the_hour(limiter: MemoryRateLimiter, clock: Clock) -> None:
    clock.now = HOUR_START + WINDOW_SECONDS - 0.4
    assert headers_of(await limiter.hit("ten_a", 10))["x-ratelimit-reset-requests"] == "1s"
    clock.now = HOUR_START + WINDOW_SECONDS - 90
    assert headers_of(await limiter.hit("ten_a", 10))["x-ratelimit-reset-requests"] == "1m30s"


async def test_a_new_hour_starts_a_new_count(limiter: MemoryRateLimiter, clock: Clock) -> None:
    for _ in range(3):
        await limiter.hit("ten_a", 2)
    clock.now = HOUR_START + WINDOW_SECONDS - 0.001
    assert not (await limiter.hit("ten_a", 2)).allowed
    clock.now = HOUR_START + WINDOW_SECONDS
    fresh = await limiter.hit("ten_a", 2)
    assert (fresh.allowed, fresh.remaining) == (True, 1)


async def test_tenants_are_counted_apart(limiter: MemoryRateLimiter) -> None:
    for _ in range(2):
        await limiter.hit("ten_a", 2)
    assert not (await limiter.hit("ten_a", 2)).allowed
    other = await limiter.hit("ten_b", 2)
    assert (other.allowed, other.remaining) == (True, 1)


async def test_rate_limited_error_carries_retry_after(limiter: MemoryRateLimiter, clock: Clock) -> None:
    await limiter.hit("ten_a", 1)
    refused = await limiter.hit("ten_a", 1)
    error = refused.error()
    assert isinstance(error, RateLimited) and error.status_code == 429
    assert_envelope(error.envelope(), type="rate_limit_error", code="rate_limit_exceeded")
    assert int(error.headers["retry-after"]) == WINDOW_SECONDS - 1


async def test_retry_after_is_at_least_one_second(limiter: MemoryRateLimiter, clock: Clock) -> None:
    clock.now = HOUR_START + WINDOW_SECONDS - 0.01
    await limiter.hit("ten_a", 1)
    error = (await limiter.hit("ten_a", 1)).error()
    assert int(error.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3599, "59m59s"), (3598.2, "59m59s"), (61, "1m1s"), (60, "1m0s"), (59, "59s"), (0.3, "1s"), (1, "1s"), (0, "0s")],
)
def test_format_reset(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text


# --- when to try Redis again during an outage -------------------------------------------------------------------------


def test_redis_is_skipped_for_a_pause_after_it_fails(clock: Clock) -> None:
    outage = RedisOutage(clock)
    assert outage.may_try() and not outage.down
    assert outage.failed("TimeoutError")  # starts an outage
    assert outage.down and not outage.may_try()
    clock.advance(FIRST_PAUSE - 0.01)
    assert not outage.may_try()
    clock.advance(0.01)
    assert outage.may_try()  # the probe
    assert not outage.may_try()  # only one at a time


def test_failed_probes_double_the_pause_up_to_the_cap(clock: Clock) -> None:
    outage = RedisOutage(clock)
    outage.failed("ConnectionError")
    pauses = []
    for _ in range(7):
        clock.advance(outage.pause)
        assert outage.may_try()
        assert not outage.failed("ConnectionError")  # the same outage
        pauses.append(outage.pause)
    assert pauses == [2 * FIRST_PAUSE, 4 * FIRST_PAUSE, 8 * FIRST_PAUSE, MAX_PAUSE, MAX_PAUSE, MAX_PAUSE, MAX_PAUSE]


def test_calls_sent_before_the_outage_began_do_not_extend_it(clock: Clock) -> None:
    outage = RedisOutage(clock)
    assert [outage.may_try() for _ in range(5)] == [True] * 5  # five requests in flight when Redis hangs
    assert [outage.failed("TimeoutError") for _ in range(5)] == [True, False, False, False, False]
    assert outage.pause == FIRST_PAUSE


def test_a_probe_given_up_lets_the_next_request_probe(clock: Clock) -> None:
    outage = RedisOutage(clock)
    outage.failed("TimeoutError")
    clock.advance(FIRST_PAUSE)
    assert outage.may_try()
    outage.abandoned()  # the probing request was cancelled
    assert outage.may_try()


def test_an_answer_ends_the_outage(clock: Clock) -> None:
    outage = RedisOutage(clock)
    assert not outage.answered()  # no outage to end
    outage.failed("TimeoutError")
    clock.advance(FIRST_PAUSE)
    assert outage.may_try()
    assert outage.answered()
    assert not outage.down and outage.may_try() and outage.may_try()
    assert outage.failed("TimeoutError") and outage.pause == FIRST_PAUSE  # a new outage starts short again
