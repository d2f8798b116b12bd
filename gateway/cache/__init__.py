"""The exact response cache: keys, entries, their replay, and the backends that keep them."""

from __future__ import annotations

from gateway.cache.assemble import entry_from_stream
from gateway.cache.backend import CacheBackend, CacheUnavailable
from gateway.cache.entry import CachedEntry, cacheable_reply, entry_from_reply
from gateway.cache.key import cache_key
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
    "entry_from_reply",
    "entry_from_stream",
    "replay_json",
    "replay_sse",
]
