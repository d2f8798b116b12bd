"""The response cache in Redis, shared by every gateway process; bypassed, never failing, while Redis is away.

Redis trouble is handled as the rate limiter handles it (gateway/limits.py): the first failed call starts an
outage during which Redis is skipped for a pause that doubles up to a cap, with one request at a time probing
it once a pause is over, so a hung Redis costs one socket timeout per pause rather than one per request.
Every call that cannot use Redis raises CacheUnavailable, which the caller serves around (`x-netra-cache: bypass`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout

from gateway.cache.backend import CacheUnavailable
from gateway.cache.entry import CachedEntry
from gateway.limits import RedisOutage

log = logging.getLogger("netra.cache")
T = TypeVar("T")


class RedisCache:
    """GET and SET ... EX on the keys `cache_key()` makes (a tenant's keys share a cluster slot)."""

    def __init__(
        self, redis: Redis, monotonic: Callable[[], float] = time.monotonic, outage: RedisOutage | None = None
    ) -> None:
        self.redis = redis
        # Pass the rate limiter's to share what is known of an outage: then one probe per pause covers both.
        self.outage = outage or RedisOutage(monotonic)
        self.redis_calls = 0  # calls that went to Redis (each may wait up to the client's socket timeout)

    @property
    def degraded(self) -> str | None:
        """Why the cache is bypassed, while it is."""
        if not self.outage.down:
            return None
        return f"redis unreachable ({self.outage.reason}); responses served without the cache"

    async def get(self, key: str) -> CachedEntry | None:
        """The entry under `key`, or None (also for a value this version cannot read)."""
        data = await self._call(lambda: self.redis.get(key))
        if not isinstance(data, bytes):
            return None
        try:
            return CachedEntry.from_bytes(data)
        except ValueError:
            log.warning("unreadable cache entry ignored", extra={"bytes": len(data)})
            return None

    async def put(self, key: str, entry: CachedEntry, ttl_s: float) -> None:
        """SET with an expiry of `ttl_s` seconds (rounded up; Redis counts whole seconds)."""
        await self._call(lambda: self.redis.set(key, entry.to_bytes(), ex=max(1, math.ceil(ttl_s))))

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        """One Redis command unless an outage skips Redis: a failure is CacheUnavailable, a success ends an outage."""
        self._may_call()
        try:
            result = await command()
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        except BaseException:
            self.outage.abandoned()  # a cancelled probe (the client left) must not keep every later one away
            raise
        self._answered()
        return result

    async def close(self) -> None:
        """Nothing: the Redis client belongs to the app and is closed with it."""

    def _may_call(self) -> None:
        if not self.outage.may_try():
            raise CacheUnavailable("redis_backoff")
        self.redis_calls += 1

    def _failed(self, exc: Exception) -> CacheUnavailable:
        """Note the failure (it may start an outage) and say why the cache is bypassed."""
        reason = "redis_timeout" if isinstance(exc, RedisTimeout | TimeoutError) else "redis_error"
        if self.outage.failed(type(exc).__name__):
            log.warning(
                "redis unavailable, serving without the response cache until it answers again",
                extra={"error": type(exc).__name__, "retry_in_s": self.outage.pause},
            )
        return CacheUnavailable(reason)

    def _answered(self) -> None:
        if self.outage.answered():
            log.info("redis answers again, response cache back in use")
