"""The exact response cache: keys, entries, their replay, and the backends that keep them."""

from __future__ import annotations

from redis.asyncio import Redis

from core.settings import Settings
from gateway.cache.assemble import entry_from_stream
from gateway.cache.backend import CacheBackend, CacheUnavailable
from gateway.cache.entry import CachedEntry, cacheable_reply, entry_from_reply
from gateway.cache.key import cache_key, canonical_hash, is_deterministic, key_from_hash
from gateway.cache.memory import MemoryCache
from gateway.cache.redis import RedisCache
from gateway.cache.replay import replay_json, replay_sse

__all__ = [
    "CacheBackend",
    "CacheUnavailable",
    "CachedEntry",
    "MemoryCache",
    "RedisCache",
    "cache_key",
    "cacheable_reply",
    "canonical_hash",
    "entry_from_reply",
    "entry_from_stream",
    "is_deterministic",
    "key_from_hash",
    "open_cache",
    "replay_json",
    "replay_sse",
]


def open_cache(settings: Settings, redis: Redis | None) -> CacheBackend:
    """Redis when configured (shared by every gateway process), memory bounded by NETRA_CACHE_MAX_BYTES otherwise."""
    return RedisCache(redis) if redis is not None else MemoryCache(settings.cache_max_bytes)
