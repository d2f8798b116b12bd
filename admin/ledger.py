"""How the admin app reaches the ledger (ClickHouse) for invoices: a store opened for each use, or one it is given.

With the embedded store, a running Netra's ledger process holds chDB: opening it here is refused (503
ledger_unavailable) until the admin app reads through the ledger process's socket; a ClickHouse server is
always reachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from clickhouse_connect.driver.exceptions import ClickHouseError

from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseLocked, ClickHouseStore, refuse_if_held
from core.errors import ServiceUnavailable
from core.settings import Settings


def unavailable() -> ServiceUnavailable:
    """The 503 for a ledger that cannot be read now."""
    return ServiceUnavailable("The ledger cannot be read right now; try again later.", code="ledger_unavailable",
                              headers={"retry-after": "5"})


class LedgerAccess(Protocol):
    """Gives a ledger store for the length of one operation."""

    def store(self) -> AbstractAsyncContextManager[ClickHouseStore]:
        """The store, open while the context lasts."""


class OpenPerUse:
    """Opens the configured store for each use and closes it after (the embedded one is not held between uses)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _open(self) -> ClickHouseStore:
        refuse_if_held(self.settings)
        opened = ClickHouseStore.open(self.settings)
        try:
            upgrade_clickhouse(opened)  # as `netra invoices` does: a store never written to reads as empty
        except BaseException:
            opened.close()
            raise
        return opened

    @asynccontextmanager
    async def store(self) -> AsyncIterator[ClickHouseStore]:
        """The store, opened off the event loop."""
        try:
            opened = await asyncio.to_thread(self._open)
        except (ClickHouseLocked, ClickHouseError, OSError, RuntimeError) as exc:
            raise unavailable() from exc
        try:
            yield opened
        finally:
            await asyncio.to_thread(opened.close)


class SharedStore:
    """A store someone else opened and will close (a test's, or a process that owns one)."""

    def __init__(self, opened: ClickHouseStore) -> None:
        self.opened = opened

    @asynccontextmanager
    async def store(self) -> AsyncIterator[ClickHouseStore]:
        """The shared store, left open."""
        yield self.opened
