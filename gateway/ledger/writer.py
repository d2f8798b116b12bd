"""The ledger writer: every call's row goes through a write-ahead spill on disk, then to ClickHouse in batches.

`begin` and `finish` append to the spill on the event loop (one `os.write` each: no fsync, no ClickHouse);
group commit runs on a thread (commit.py), ingest and crash recovery in the background. See spill.py for the
file format, ingest.py for how batches are sent exactly once, replay.py for what happens to a dead process's spill.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from core.errors import ServiceUnavailable
from core.settings import Settings
from gateway.ledger.base import IngestRunner, RowSink
from gateway.ledger.ingest import Ingestor, Waker
from gateway.ledger.journal import Journal
from gateway.ledger.local import LocalIngest
from gateway.ledger.metrics import Backlog, LedgerMetrics
from gateway.ledger.remote import RemoteIngest

log = logging.getLogger("netra.ledger")
_RETRY_AFTER = {"retry-after": "5"}
_DRAIN_POLL = 0.005


class LedgerWriter:
    """The event writer: exactly one ClickHouse row per call, through a write-ahead spill.

    With a `sink`, ingest runs in this process; without one, the data directory's ledger process ingests it (one
    per data directory, shared by every gateway process, started by whichever finds none: remote.py, ledgerd.py),
    so the embedded engine's CPU and memory stay off the gateway's event loop and out of its process.
    """

    def __init__(
        self, settings: Settings, sink: RowSink | None, registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self.instance = uuid.uuid4().hex
        self._backlog = Backlog(mark=clock())
        self.metrics = LedgerMetrics(registry, self._backlog, clock)
        self._waker = Waker()
        self._journal = Journal(settings, self.instance, self.metrics, self._backlog, self._waker, clock)
        self._ingest: IngestRunner
        if sink is None:
            live = self._live_segment
            self._ingest = RemoteIngest(settings, self.instance, self.metrics, self._backlog, live, clock)
        else:
            ingestor = Ingestor(settings, sink, self.metrics, self._backlog, self._waker, clock)
            self._ingest = LocalIngest(settings, self._journal, ingestor, self._backlog, self._waker)
        self._started = False
        self._closing = False

    @property
    def healthy(self) -> bool:
        """Whether calls can be recorded now."""
        return not self._closing and self._journal.ok

    @property
    def store_ready(self) -> bool:
        """Whether ingest has its ClickHouse store open."""
        return self._ingest.store_ready

    async def start(self) -> None:
        """Open the spill, start group commit, recovery and ingest; an unwritable spill leaves it unhealthy."""
        if self._started or self._closing:
            return
        self._started = True
        try:
            self._journal.open()
        except OSError as exc:
            # Serve 503s (and keep retrying) rather than fail start-up: the disk may come back.
            self._journal.failed(exc)
        self._journal.start_heals()
        self._ingest.start()

    def _live_segment(self) -> int:
        return self._journal.position()[0]

    def begin(self, row: dict[str, Any]) -> None:
        """Record that a call started; ServiceUnavailable if that cannot be recorded."""
        if self._closing:
            raise ServiceUnavailable("Netra is shutting down.", code="shutting_down", headers=dict(_RETRY_AFTER))
        if not self._journal.ok:
            raise _logging_unavailable()
        try:
            self._journal.start_call(row)
        except OSError as exc:
            self._journal.failed(exc)
            raise _logging_unavailable() from exc

    def finish(self, row: dict[str, Any]) -> None:
        """Record a finished call's ledger row (never raises)."""
        self._journal.finish_call(row)

    def backlog(self) -> tuple[int, int]:
        """(rows, bytes) recorded but not yet acknowledged by ClickHouse."""
        return max(self._backlog.rows, 0), max(self._backlog.bytes, 0)

    async def drain(self) -> None:
        """Wait until every row recorded so far (and every dead writer's spill) is acknowledged."""
        ingest = self._ingest
        ingest.hurry(1)
        try:
            await self._until(lambda: not self._journal.retry)
            target = self._journal.position()
            ingest.hurry(0)
            await self._until(lambda: ingest.recovered and ingest.ingested >= target)
        finally:
            ingest.hurry(-1)

    async def _until(self, done: Callable[[], bool]) -> None:
        while not done():
            if not self._started:
                raise RuntimeError("the ledger writer is not started")
            self._ingest.check()  # surfaces the failure that stopped ingest
            await asyncio.sleep(_DRAIN_POLL)

    async def close(self, grace: float | None = None) -> None:
        """Stop accepting calls, flush within `grace` seconds, release the spill (kept on disk if not flushed)."""
        if self._closing:
            return
        self._closing = True
        wait = self._settings.graceful_shutdown_timeout if grace is None else grace
        flushed = False
        try:
            if self._started:
                async with asyncio.timeout(wait):
                    await self.drain()
                flushed = True
        except TimeoutError:
            log.warning("ledger not flushed at shutdown: rows stay in the spill for the next start-up",
                        extra={"rows": self.backlog()[0]})
        finally:
            await self._shut_down(flushed)

    async def _shut_down(self, flushed: bool) -> None:
        # Ingest stops first: once the journal is closed no segment is live, and ingest would delete the last
        # one, whose start records the next start-up needs for calls still in flight.
        await self._ingest.stop()
        last = self._journal.position()
        await self._journal.stop()  # closes the journal before its first await: nothing is appended after `last`
        journal = self._journal
        empty = flushed and self._ingest.ingested >= last and not journal.in_flight and not journal.retry
        # Calls still in flight keep the directory: the next start-up records them as crashed.
        journal.release(remove=empty)

    async def abandon(self) -> None:
        """Test-only: stop as a killed process would, without syncing, flushing or deleting anything."""
        self._closing = True
        await self._ingest.stop()
        await self._journal.abandon()


def _logging_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The call cannot be recorded right now; retry later.", code="logging_unavailable",
        headers=dict(_RETRY_AFTER),
    )
