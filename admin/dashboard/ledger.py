"""How the pages read the ledger: a reader per request (core.ledger_reader), so the admin app never holds the
embedded store's lock between requests, and a restarted ledger process is simply found again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from core.clickhouse import ClickHouseLocked
from core.ledger_reader import LedgerQueryError, LedgerReader, open_reader
from core.ledger_reader import LedgerUnavailable as ReaderUnavailable
from core.settings import Settings

T = TypeVar("T")
LedgerOpener = Callable[[Settings], LedgerReader | None]
# How long a page waits for a ledger process that is starting or stopping, in seconds.
READ_PATIENCE = 3.0
log = logging.getLogger("netra.admin")


class LedgerUnavailable(Exception):
    """The pages cannot read the ledger now."""


def open_ledger(settings: Settings) -> LedgerReader | None:
    """A reader on the ledger (over the ledger process's socket while Netra runs), or None when none answers."""
    if not settings.ledger_enabled:
        return None
    try:
        return open_reader(settings, patience=READ_PATIENCE)
    except (ReaderUnavailable, ClickHouseLocked) as exc:
        log.warning("analytics pages without the ledger: %s", exc)
        return None


class Reading:
    """One request's reader: analytics functions (`fn(run, *args)`) run on it off the event loop."""

    def __init__(self, reader: LedgerReader) -> None:
        self.reader = reader

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(reader.query, *args)` in a thread; LedgerUnavailable when the ledger went away meanwhile."""
        try:
            return await asyncio.to_thread(fn, self.reader.query, *args)
        except (ReaderUnavailable, LedgerQueryError) as exc:
            log.warning("ledger read failed: %s", exc)
            raise LedgerUnavailable from exc


class Ledger:
    """Opens a reader for each request that reads the ledger."""

    def __init__(self, settings: Settings, opener: LedgerOpener) -> None:
        self._settings, self._opener = settings, opener

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Reading]:
        """A reader for this request, closed after it; LedgerUnavailable when none can be opened."""
        reader = await asyncio.to_thread(self._opener, self._settings)
        if reader is None:
            raise LedgerUnavailable
        try:
            yield Reading(reader)
        finally:
            await asyncio.to_thread(reader.close)
