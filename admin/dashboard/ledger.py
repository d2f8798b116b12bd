"""How the pages read the ledger: through the admin app's one ledger access (admin/ledger.py), a reader per request,
so the app never holds the embedded store's lock between requests and a restarted ledger process is found again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from admin.ledger import READ_FAILURES, LedgerAccess
from core.errors import ServiceUnavailable
from core.ledger_reader import LedgerReader

T = TypeVar("T")
log = logging.getLogger("netra.admin")


class LedgerUnavailable(Exception):
    """The pages cannot read the ledger now."""


class Reading:
    """One request's reader: analytics functions (`fn(run, *args)`) run on it off the event loop."""

    def __init__(self, reader: LedgerReader) -> None:
        self.reader = reader

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(reader.query, *args)` in a thread; LedgerUnavailable when the ledger went away meanwhile."""
        try:
            return await asyncio.to_thread(fn, self.reader.query, *args)
        except READ_FAILURES as exc:
            log.warning("ledger read failed: %s", exc)
            raise LedgerUnavailable from exc


class Ledger:
    """Opens a reader for each request that reads the ledger, through the app's ledger access."""

    def __init__(self, access: LedgerAccess) -> None:
        self._access = access

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Reading]:
        """A reader for this request, closed after it; LedgerUnavailable when none can be opened."""
        try:
            context = self._access.reader()
            reader = await context.__aenter__()
        except ServiceUnavailable as exc:
            raise LedgerUnavailable from exc
        try:
            yield Reading(reader)
        finally:
            await context.__aexit__(None, None, None)
