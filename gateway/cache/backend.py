"""The seam between the gateway and where cached answers live (in this process, or Redis)."""

from __future__ import annotations

from typing import Protocol

from gateway.cache.entry import CachedEntry


class CacheUnavailable(Exception):
    """The cache cannot be used now (Redis down, hung, or being skipped after failing): serve without it.

    `reason` is a short label for the `netra_cache_bypass` metric: `redis_error`, `redis_timeout` or
    `redis_backoff` (skipped without a call while Redis is in an outage).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CacheBackend(Protocol):
    """Where cached answers are kept; keys come from `cache_key()` and already name the tenant."""

    @property
    def degraded(self) -> str | None:
        """Why the cache is being bypassed right now (None when all is well)."""
        ...

    async def get(self, key: str) -> CachedEntry | None:
        """The live entry under `key`, or None; raises CacheUnavailable when the cache cannot be asked."""
        ...

    async def put(self, key: str, entry: CachedEntry, ttl_s: float) -> None:
        """Store `entry` for `ttl_s` seconds; raises CacheUnavailable when the cache cannot be written."""
        ...

    async def close(self) -> None:
        """Release what the backend holds (a shared Redis client is closed by its owner, not here)."""
        ...
