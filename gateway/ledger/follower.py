"""In the ledger process: following one gateway process's spill, and reporting progress back to it.

A gateway process connected to the ledger's socket says which spill instance is its own, then sends control
lines: `{"live": N}` when it moves to segment N and `{"hurry": ±1}` while a drain waits. The ledger answers with
reports, one JSON object per line: deltas of the backlog (`rows`, `bytes`, `disk`) and of the counters
(`written`, `errors`, `spill_errors`, `rejected`), the age mark `oldest_us`, `at` ([segment, offset] of the
gateway's own spill acknowledged so far), and the flags `store` (ClickHouse is open) and `recovered` (a pass over
dead writers' spills has run since the gateway connected). The deltas of recovering dead writers' spills go to one
gateway at a time (the longest connected), so the gateways' counters add up to the ledger's work exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from core.clickhouse import ClickHouseStore
from core.settings import Settings
from gateway.ledger.ingest import Ingestor, Waker
from gateway.ledger.metrics import Backlog, LedgerMetrics
from gateway.ledger.spill import segment_numbers, segment_path

POLL = 0.05  # how often the ledger looks for new rows (nobody tells it about appends)
_COUNTERS = {"written": "netra_ledger_rows_written_total", "errors": "netra_ledger_insert_errors_total",
             "spill_errors": "netra_ledger_spill_errors_total", "rejected": "netra_ledger_rows_rejected_total"}
_BACKLOG = ("rows", "bytes", "disk")
Send = Callable[[bytes], None]


class Reporter:
    """Sends what changed since the last report: deltas, so the gateway can add them to its own counts."""

    def __init__(self, send: Send | None, backlog: Backlog, registry: CollectorRegistry, progress: bool) -> None:
        self.send = send
        self._backlog = backlog
        self._registry = registry
        self._sent = self._counts()
        self._event = asyncio.Event()
        self.at = (0, 0)
        self.recovered = False
        self.store_open = False
        self._progress = progress  # without it (the recovery reporter) neither `at` nor the flags are sent
        self._sent_at: tuple[int, int] | None = None
        self._sent_flags: tuple[bool, bool] | None = None

    def _counts(self) -> dict[str, int]:
        b = self._backlog
        counts = {"rows": b.rows, "bytes": b.bytes, "disk": b.disk_bytes}
        for key, name in _COUNTERS.items():
            counts[key] = int(self._registry.get_sample_value(name) or 0)
        return counts

    def rebase(self, send: Send | None) -> None:
        """Report to another gateway from now on: it gets the whole backlog, and only new counts."""
        self.send = send
        for key in _BACKLOG:
            self._sent[key] = 0

    def report(self, number: int, offset: int) -> None:
        """Ingest's progress on the gateway's own spill: say so at once (a drain may be waiting)."""
        self.at = (number, offset)
        self.poke()

    def poke(self) -> None:
        """Report now rather than at the next poll."""
        self._event.set()

    def emit(self) -> None:
        """Write one report line if anything changed (and someone listens)."""
        if self.send is None:
            return
        now = self._counts()
        message: dict[str, Any] = {k: v - self._sent[k] for k, v in now.items() if v != self._sent[k]}
        flags = (self.store_open, self.recovered)
        if self._progress and self.at != self._sent_at:
            message["at"] = list(self.at)
        if self._progress and flags != self._sent_flags:
            message["store"], message["recovered"] = flags
        if not message:
            return
        message["oldest_us"] = self._backlog.oldest_us
        self.send(orjson.dumps(message) + b"\n")
        self._sent, self._sent_at, self._sent_flags = now, self.at, flags

    async def run(self) -> None:
        """Report at most every POLL, or at once after progress."""
        while True:
            self._event.clear()
            self.emit()
            try:
                async with asyncio.timeout(POLL):
                    await self._event.wait()
            except TimeoutError:
                pass


class Ledgerbook:
    """An ingestor with its own metrics and backlog: one per followed spill, one for recovery."""

    def __init__(self, settings: Settings, send: Send | None, progress: bool) -> None:
        self.backlog = Backlog()
        self.registry = CollectorRegistry()
        self.metrics = LedgerMetrics(self.registry, self.backlog, time.time)
        self.waker = Waker(max_wait=POLL)
        self.reporter = Reporter(send, self.backlog, self.registry, progress)
        self._settings = settings
        self.ingestor: Ingestor | None = None

    def ingest_to(self, store: ClickHouseStore) -> Ingestor:
        """The ingestor sending to `store` (made once)."""
        if self.ingestor is None:
            self.ingestor = Ingestor(self._settings, store, self.metrics, self.backlog, self.waker, time.time)
        return self.ingestor

    async def close(self) -> None:
        """Wait for the file work in hand, then send the last report."""
        if self.ingestor is not None:
            await self.ingestor.close()
        self.reporter.emit()


class Follower(Ledgerbook):
    """Follows one gateway process's own segments as it appends to them."""

    def __init__(self, settings: Settings, instance: str, send: Send) -> None:
        super().__init__(settings, send, progress=True)
        self.instance = instance
        self._directory = settings.spill_dir / instance
        self._live = 0  # the segment the gateway appends to; 0 until it says (then every segment counts as live)
        self.need_pass = 0  # the recovery pass after which the gateway counts as recovered

    def control(self, message: dict[str, Any]) -> None:
        """Apply one control line from the gateway."""
        if "live" in message:
            self._live = int(message["live"])
            self.waker.poke()
        if "hurry" in message:
            self.waker.urgent += int(message["hurry"])
            self.waker.poke()

    async def run(self, opened: Callable[[], Awaitable[ClickHouseStore]]) -> None:
        """Follow the spill until cancelled: send each segment's rows, delete it once the gateway moved on."""
        ingestor = self.ingest_to(await opened())
        self.reporter.store_open = True
        while True:
            numbers = await ingestor.io_retry(_own_segments, self._directory)
            if not numbers:
                self.waker.arm()
                await self.waker.wait(1, POLL)
                continue
            number = numbers[0]
            live, report = partial(self._is_live, number), partial(self.reporter.report, number)
            await ingestor.ingest_segment(self.instance, segment_path(self._directory, number), live, report)

    def _is_live(self, number: int) -> bool:
        return self._live == 0 or number >= self._live


def _own_segments(directory: Path) -> list[int]:
    try:
        return segment_numbers(directory)
    except FileNotFoundError:
        return []
