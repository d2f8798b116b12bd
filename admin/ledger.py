"""How the admin app reads the ledger (ClickHouse) for invoices: a reader opened for each use, or one it is given.

The default opens `core.ledger_reader.open_reader` for each operation: a ClickHouse server directly, or, with the
embedded store, the running Netra's ledger process over its socket (the store itself when no Netra runs). A
ledger that cannot be reached is a 503 ledger_unavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, TypeVar

from clickhouse_connect.driver.exceptions import ClickHouseError

from core.clickhouse import ClickHouseLocked
from core.errors import ServiceUnavailable
from core.ledger_reader import LedgerQueryError, LedgerReader, LedgerUnavailable, open_reader
from core.settings import Settings

T = TypeVar("T")
# What reading the ledger may fail with when it cannot be reached or answer (a 503, never a 500).
READ_FAILURES = (LedgerUnavailable, LedgerQueryError, ClickHouseError, OSError)
# How long a request waits for a ledger process that is starting or stopping before answering 503.
PATIENCE_SECONDS = 5.0


def unavailable() -> ServiceUnavailable:
    """The 503 for a ledger that cannot be read now."""
    return ServiceUnavailable("The ledger cannot be read right now; try again later.", code="ledger_unavailable",
                              headers={"retry-after": "5"})


class LedgerAccess(Protocol):
    """Gives a ledger reader for the length of one operation."""

    def reader(self) -> AbstractAsyncContextManager[LedgerReader]:
        """The reader, open while the context lasts."""


class OpenPerUse:
    """Opens a reader on the configured ledger for each use and closes it after (nothing is held between uses)."""

    def __init__(self, settings: Settings, patience: float = PATIENCE_SECONDS) -> None:
        self.settings = settings
        self.patience = patience

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[LedgerReader]:
        """The reader, opened off the event loop."""
        try:
            opened = await asyncio.to_thread(open_reader, self.settings, self.patience)
        except (LedgerUnavailable, ClickHouseLocked, ClickHouseError, OSError) as exc:
            raise unavailable() from exc
        try:
            yield opened
        finally:
            await asyncio.to_thread(opened.close)


class SharedReader:
    """A reader someone else opened and will close (a test's store, or a process that owns one)."""

    def __init__(self, opened: LedgerReader) -> None:
        self.opened = opened

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[LedgerReader]:
        """The shared reader, left open."""
        yield self.opened


async def read(ledger: LedgerAccess, ask: Callable[[LedgerReader], T]) -> T:
    """Ask a blocking question of a reader, off the event loop; an unreachable ledger is a 503."""
    try:
        async with ledger.reader() as opened:
            return await asyncio.to_thread(ask, opened)
    except READ_FAILURES as exc:
        raise unavailable() from exc
