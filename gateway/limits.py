"""Per-tenant hourly request limits by tier: shared through Redis when configured, in memory otherwise.

Redis trouble degrades, it does not fail requests. The first failed Redis call (down, or hung until the client's
socket timeout) starts an outage: Redis is skipped for a pause that doubles on every failed probe up to a cap,
and one request at a time probes it once a pause is over, so a hung Redis costs one timeout per pause instead of
one per request. Meanwhile each tenant is counted here, starting from the last count Redis reported for its
window, so one process never admits more than the limit. With several gateway processes each starts from what
it last saw: the slack is whatever the others counted after that. When Redis answers again, a tenant's next
request adds the requests counted locally (INCRBY), so the shared count includes what was admitted meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.backoff import Backoff
from core.errors import RateLimited

WINDOW_SECONDS = 3600
FIRST_PAUSE = 2.0  # seconds Redis is skipped after it first fails
MAX_PAUSE = 30.0
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

    @property
    def degraded(self) -> str | None:
        """Why limits are counted less well than configured (None when all is well)."""
        ...

    async def hit(self, tenant_id: str, limit: int) -> LimitResult:
        """Count one request and say whether it is allowed."""
        ...


class MemoryRateLimiter:
    """Fixed hourly windows counted in this process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}

    @property
    def degraded(self) -> str | None:
        """Never: counting in this process is what was configured."""
        return None

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


class RedisOutage:
    """When to try Redis again during an outage: after a pause that doubles up to a cap, one probe at a time."""

    def __init__(self, clock: Callable[[], float], first: float = FIRST_PAUSE, cap: float = MAX_PAUSE) -> None:
        self.clock = clock
        self._pauses = Backoff(first, cap)
        self.pause = 0.0  # 0 while Redis answers
        self.retry_at = 0.0
        self.probing = False
        self.reason = ""

    @property
    def down(self) -> bool:
        """Whether an outage is going on."""
        return self.pause > 0

    def may_try(self) -> bool:
        """Whether this request may call Redis (always while it answers; the one probe once a pause is over)."""
        if not self.down:
            return True
        if self.probing or self.clock() < self.retry_at:
            return False
        self.probing = True
        return True

    def failed(self, reason: str) -> bool:
        """Note a failed call; True when it starts an outage."""
        if self.down and not self.probing:
            return False  # a call sent before the outage began: the pause already covers it
        starting = not self.down
        self.pause = self._pauses.next()
        self.retry_at, self.probing, self.reason = self.clock() + self.pause, False, reason
        return starting

    def abandoned(self) -> None:
        """Note a call given up without an outcome (the request was cancelled): the next one may probe."""
        self.probing = False

    def answered(self) -> bool:
        """Note a call Redis answered; True when it ends an outage."""
        ending = self.down
        self.pause, self.probing, self.reason = 0.0, False, ""
        self._pauses.reset()  # the next outage starts with the first pause again
        return ending


class RedisRateLimiter:
    """Fixed hourly windows counted in Redis, shared by every gateway process; local buckets if Redis fails."""

    def __init__(
        self, redis: Redis, clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.outage = RedisOutage(monotonic)
        self.redis_calls = 0  # calls that went to Redis (each may wait up to the client's socket timeout)
        self._window = -1
        self._seen: dict[str, int] = {}  # the highest count Redis reported this window, per tenant
        self._local: dict[str, int] = {}  # requests counted here this window and not yet added to Redis
        self._outage_hits = 0

    @property
    def degraded(self) -> str | None:
        """Why Redis is skipped, while it is."""
        if not self.outage.down:
            return None
        return f"redis unreachable ({self.outage.reason}); rate limits counted in this process"

    async def hit(self, tenant_id: str, limit: int) -> LimitResult:
        """Count one request with INCRBY on the tenant's window key, or locally while Redis is away."""
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window, self._seen, self._local = window, {}, {}
        if self.outage.may_try():
            count = await self._count_in_redis(tenant_id, window)
            if count is not None:
                return _result(count, limit, now)
        self._outage_hits += 1
        self._local[tenant_id] = self._local.get(tenant_id, 0) + 1
        return _result(self._seen.get(tenant_id, 0) + self._local[tenant_id], limit, now)

    async def _count_in_redis(self, tenant_id: str, window: int) -> int | None:
        # The hash tag keeps a tenant's keys on one cluster slot.
        key = f"netra:rl:{{{tenant_id}}}:{window}"
        pending = self._local.get(tenant_id, 0)
        self.redis_calls += 1
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, 1 + pending)
                pipe.expire(key, WINDOW_SECONDS * 2)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._note_failure(type(exc).__name__)
            return None
        except BaseException:
            self.outage.abandoned()  # a cancelled probe (the client left) must not keep every later one away
            raise
        self._note_answer()
        if window == self._window:  # the window did not roll over while this call waited
            self._local[tenant_id] = self._local.get(tenant_id, 0) - pending
            self._seen[tenant_id] = max(self._seen.get(tenant_id, 0), int(count))
        return int(count)

    def _note_failure(self, reason: str) -> None:
        if self.outage.failed(reason):
            self._outage_hits = 0
            log.warning(
                "redis unavailable, counting rate limits locally until it answers again",
                extra={"error": reason, "retry_in_s": self.outage.pause},
            )
        else:
            log.debug("redis still unavailable", extra={"error": reason, "retry_in_s": self.outage.pause})

    def _note_answer(self) -> None:
        if self.outage.answered():
            log.info("redis answers again, counting rate limits in redis", extra={"counted_locally": self._outage_hits})
