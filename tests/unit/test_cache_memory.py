"""The in-process response cache: bounded in bytes, least recently used evicted first, entries expire."""

from __future__ import annotations

from core.settings import Settings
from gateway.cache import CachedEntry, MemoryCache, open_cache
from tests.unit.helpers import Clock


def entry(body_bytes: int, request_id: str = "req-1") -> CachedEntry:
    return CachedEntry("chat/completions", b"x" * body_bytes, 10, 5, 0, True, 0.0, request_id, "gpt-4o-mini")


def test_the_default_bound_is_256_mib() -> None:
    assert Settings(_env_file=None).cache_max_bytes == 256 * 1024 * 1024


async def test_an_entry_is_found_until_its_ttl_ends() -> None:
    clock = Clock(1000.0)
    cache = MemoryCache(1_000_000, clock)
    await cache.put("k", entry(100), ttl_s=60)
    clock.advance(59.9)
    assert await cache.get("k") == entry(100)
    clock.advance(0.1)
    assert await cache.get("k") is None
    assert (len(cache), cache.bytes) == (0, 0)  # the expired entry no longer holds memory


async def test_a_missing_key_is_a_miss() -> None:
    cache = MemoryCache(1_000_000, Clock())
    await cache.put("netra:cache:{acme}:1", entry(10), 60)
    assert await cache.get("netra:cache:{globex}:1") is None


async def test_the_least_recently_used_entry_is_evicted_past_the_byte_bound() -> None:
    size = entry(1000, "a").size
    cache = MemoryCache(3 * size, Clock())
    for key in ("a", "b", "c"):
        await cache.put(key, entry(1000, key), 60)
    assert await cache.get("a") is not None  # "a" is now more recent than "b"
    await cache.put("d", entry(1000, "d"), 60)
    assert [await cache.get(k) is not None for k in "abcd"] == [True, False, True, True]
    assert cache.bytes == 3 * size <= cache.max_bytes


async def test_one_large_entry_evicts_as_many_as_it_needs() -> None:
    small = entry(100).size
    cache = MemoryCache(10 * small, Clock())
    for n in range(10):
        await cache.put(str(n), entry(100), 60)
    await cache.put("big", entry(5 * small), 60)
    assert await cache.get("big") is not None
    assert sum([await cache.get(str(n)) is not None for n in range(10)]) < 5
    assert cache.bytes <= cache.max_bytes


async def test_an_entry_larger_than_the_bound_is_not_stored_and_evicts_nothing() -> None:
    cache = MemoryCache(entry(1000).size, Clock())
    await cache.put("a", entry(1000), 60)
    await cache.put("huge", entry(5000), 60)
    assert await cache.get("huge") is None
    assert await cache.get("a") is not None


async def test_storing_a_key_again_replaces_its_entry_and_its_bytes() -> None:
    cache = MemoryCache(1_000_000, Clock())
    await cache.put("k", entry(100, "first"), 60)
    await cache.put("k", entry(300, "second"), 60)
    found = await cache.get("k")
    assert found is not None and found.request_id == "second"
    assert cache.bytes == entry(300, "second").size


async def test_a_ttl_of_zero_stores_nothing() -> None:
    cache = MemoryCache(1_000_000, Clock())
    await cache.put("k", entry(10), 0)
    assert await cache.get("k") is None


async def test_close_forgets_everything() -> None:
    cache = MemoryCache(1_000_000, Clock())
    await cache.put("k", entry(10), 60)
    await cache.close()
    assert await cache.get("k") is None and cache.bytes == 0 and cache.degraded is None


async def test_without_redis_the_cache_is_in_memory_with_the_configured_bound() -> None:
    cache = open_cache(Settings(_env_file=None, cache_max_bytes=entry(100).size), None)
    assert isinstance(cache, MemoryCache)
    await cache.put("a", entry(100), 60)
    await cache.put("b", entry(100), 60)
    assert await cache.get("a") is None and await cache.get("b") is not None
