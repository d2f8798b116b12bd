"""The response cache in this process: bounded in bytes, least recently used entries evicted first."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from gateway.cache.entry import CachedEntry


class MemoryCache:
    """Entries in an LRU dict with an expiry each; never holds more than `max_bytes` of entries (`entry.size`)."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[float, CachedEntry]] = OrderedDict()  # key -> (expires at, entry)

    @property
    def degraded(self) -> str | None:
        """Never: memory is always there."""
        return None

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> CachedEntry | None:
        """The live entry, now the most recently used; an expired one is dropped."""
        return self.get_now(key)

    def get_now(self, key: str) -> CachedEntry | None:
        """The same, synchronously."""
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return found[1]

    async def put(self, key: str, entry: CachedEntry, ttl_s: float) -> None:
        """Store the entry; an entry larger than the whole bound is not stored."""
        self.put_now(key, entry, ttl_s)

    def put_now(self, key: str, entry: CachedEntry, ttl_s: float) -> None:
        """The same, synchronously."""
        if key in self._entries:
            self._drop(key)
        if entry.size > self.max_bytes or ttl_s <= 0:
            return
        self._entries[key] = (self.clock() + ttl_s, entry)
        self.bytes += entry.size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))  # the least recently used

    async def close(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self.bytes = 0

    def _drop(self, key: str) -> None:
        _, entry = self._entries.pop(key)
        self.bytes -= entry.size
