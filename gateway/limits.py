"""Per-tenant hourly request limits by tier: shared through Redis when configured, in memory otherwise."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import RateLimited

WINDOW_SECONDS = 3600
log = logging.getLogger("netra.limits")


@dataclass(frozen=True, slots=True)
class LimitResult:
    """The state of a tenant's bucket after counting one request."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The x-ratelimit-* headers describing the bucket."""
        return [
            (b"x-ratelimit-limit-requests", str(self.limit).encode()),
            (b"x-ratelimit-remaining-requests", str(self.remaining).encode()),
            (b"x-ratelimit-reset-requests", format_reset(self.reset_seconds).encode()),
        ]

    def error(self) -> RateLimited:
        """The 429 to send when the bucket is spent."""
        return RateLimited(
            f"Rate limit reached: {self.limit} requests per hour for this tenant. "
            f"Try again in {format_reset(self.reset_seconds)}.",
            headers={"retry-after": str(max(1, int(self.reset_seconds + 0.999)))},
        )


def format_reset(seconds: float) -> str:
    """A duration the way OpenAI writes it in rate-limit headers: `59m59s`, `1s`."""
    whole = max(0, int(seconds + 0.999))
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _result(count: int, limit: int, now: float) -> LimitResult:
    reset = WINDOW_SECONDS - (now % WINDOW_SECONDS)
    return LimitResult(count <= limit, limit, max(0, limit - count), reset)


class RateLimiter(Protocol):
    """Counts a request against a tenant's hourly limit."""

    async def hit(self, tenant_id: str, limit: int) -> LimitResult:
        """Count one request and say whether it is allowed."""
        ...


class MemoryRateLimiter:
    """Fixed hourly windows counted in this process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}

    async def hit(self, tenant_id: str, limit: int) -> LimitResult:
        """Count one request in the current window."""
        return self.hit_now(tenant_id, limit)

    def hit_now(self, tenant_id: str, limit: int) -> LimitResult:
        """The same, synchronously."""
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window, self._counts = window, {}
        count = self._counts.get(tenant_id, 0) + 1
        self._counts[tenant_id] = count
        return _result(count, limit, now)


class RedisRateLimiter:
    """Fixed hourly windows counted in Redis, shared by every gateway process; local buckets if Redis fails."""

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock
        self.fallback = MemoryRateLimiter(clock)

    async def hit(self, tenant_id: str, limit: int) -> LimitResult:
        """Count one request with INCR on the tenant's window key."""
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        # The hash tag keeps a tenant's keys on one cluster slot.
        key = f"netra:rl:{{{tenant_id}}}:{window}"
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS * 2)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable, counting locally", extra={"error": type(exc).__name__})
            return self.fallback.hit_now(tenant_id, limit)
        return _result(int(count), limit, now)
