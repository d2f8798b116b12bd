"""The ledger's ingest process: sends one gateway's spill, and the spills of dead writers, to ClickHouse.

Started by the gateway (remote.py) as `python -m gateway.ledger.sidecar INSTANCE`. Its input is the settings
line, then control lines; end of input means stop. Its output carries reports only, one JSON object per line:
deltas of the backlog (`rows`, `bytes`, `disk`) and of the counters (`written`, `errors`, `spill_errors`,
`rejected`), the age mark `oldest_us`, `at` ([segment, offset] of the gateway's own spill acknowledged so far),
and the flags `store` (ClickHouse is open) and `recovered` (dead writers' spills are replayed).
Logs go to stderr, which it shares with the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from core.backoff import Backoff
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore
from core.logs import configure_logging
from core.settings import Settings
from gateway.ledger.ingest import Ingestor, Waker
from gateway.ledger.metrics import Backlog, LedgerMetrics
from gateway.ledger.replay import recover_instances
from gateway.ledger.spill import segment_numbers, segment_path

log = logging.getLogger("netra.ledger")
POLL = 0.05  # how often the child looks for new rows (nobody tells it about appends)
_OPEN_FIRST, _OPEN_MAX = 0.5, 10.0
_COUNTERS = {"written": "netra_ledger_rows_written_total", "errors": "netra_ledger_insert_errors_total",
             "spill_errors": "netra_ledger_spill_errors_total", "rejected": "netra_ledger_rows_rejected_total"}


class Reporter:
    """Sends what changed since the last report: deltas, so the gateway can add them to its own counts."""

    def __init__(self, fd: int, backlog: Backlog, registry: CollectorRegistry) -> None:
        self._fd = fd
        self._backlog = backlog
        self._registry = registry
        self._sent = self._counts()
        self._event = asyncio.Event()
        self.at = (0, 0)
        self.recovered = False
        self.store_open = False
        self._sent_at: tuple[int, int] | None = None
        self._sent_flags: tuple[bool, bool] = (False, False)

    def _counts(self) -> dict[str, int]:
        b = self._backlog
        counts = {"rows": b.rows, "bytes": b.bytes, "disk": b.disk_bytes}
        for key, name in _COUNTERS.items():
            counts[key] = int(self._registry.get_sample_value(name) or 0)
        return counts

    def report(self, number: int, offset: int) -> None:
        """Ingest's progress on the gateway's own spill: say so at once (a drain may be waiting)."""
        self.at = (number, offset)
        self._event.set()

    def emit(self) -> None:
        """Write one report line if anything changed."""
        now = self._counts()
        message: dict[str, Any] = {k: v - self._sent[k] for k, v in now.items() if v != self._sent[k]}
        if self.at != self._sent_at:
            message["at"] = list(self.at)
        flags = (self.store_open, self.recovered)
        if flags != self._sent_flags:
            message["store"], message["recovered"] = flags
        if not message:
            return
        message["oldest_us"] = self._backlog.oldest_us
        os.write(self._fd, orjson.dumps(message) + b"\n")
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


class IngestChild:
    """Opens the store, replays dead writers, then follows the gateway's own segments."""

    def __init__(self, settings: Settings, instance: str, fd: int) -> None:
        self._settings = settings
        self._instance = instance
        self._backlog = Backlog()
        self._registry = CollectorRegistry()
        self._metrics = LedgerMetrics(self._registry, self._backlog, time.time)
        self._waker = Waker(max_wait=POLL)
        self.reporter = Reporter(fd, self._backlog, self._registry)
        self._live = 0  # the segment the gateway appends to; 0 until it says (then every segment counts as live)
        self._store: ClickHouseStore | None = None
        self._ingestor: Ingestor | None = None

    def control(self, message: dict[str, Any]) -> None:
        """Apply one control line from the gateway."""
        if "live" in message:
            self._live = int(message["live"])
            self._waker.poke()
        if "hurry" in message:
            self._waker.urgent += int(message["hurry"])
            self._waker.poke()

    async def run(self) -> None:
        """Everything the child does until it is told to stop."""
        store = self._store = await self._open_store()
        self.reporter.store_open = True
        ingestor = self._ingestor = Ingestor(
            self._settings, store, self._metrics, self._backlog, self._waker, time.time
        )
        settings = self._settings
        await recover_instances(settings.spill_dir, self._instance, ingestor, self._backlog)
        self.reporter.recovered = True
        await self._follow(ingestor, self._settings.spill_dir / self._instance)

    async def _open_store(self) -> ClickHouseStore:
        # Another process may still hold the embedded store (a previous child finishing): the rows wait.
        backoff = Backoff(_OPEN_FIRST, _OPEN_MAX)
        while True:
            try:
                store = await asyncio.to_thread(ClickHouseStore.open, self._settings)
                await store.run(upgrade_clickhouse, store)
                return store
            except Exception as exc:  # any failure to open is retried: the spill holds the rows meanwhile
                delay = backoff.next()
                log.warning("ledger ingest cannot open ClickHouse; retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)

    async def _follow(self, ingestor: Ingestor, directory: Path) -> None:
        while True:
            numbers = await ingestor.io_retry(_own_segments, directory)
            if not numbers:
                self._waker.arm()
                await self._waker.wait(1, POLL)
                continue
            number = numbers[0]
            live, report = partial(self._is_live, number), partial(self.reporter.report, number)
            await ingestor.ingest_segment(self._instance, segment_path(directory, number), live, report)

    def _is_live(self, number: int) -> bool:
        return self._live == 0 or number >= self._live

    async def close(self) -> None:
        """Stop the ingest thread, close the store, send the last report."""
        if self._ingestor is not None:
            await self._ingestor.close()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
        self.reporter.emit()


def _own_segments(directory: Path) -> list[int]:
    try:
        return segment_numbers(directory)
    except FileNotFoundError:
        return []


async def _control_stream() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    return reader


async def serve(instance: str, fd: int) -> None:
    """Run until the gateway closes our input."""
    control = await _control_stream()
    settings = Settings.model_validate(orjson.loads(await control.readline()))
    configure_logging(settings.log_level)
    child = IngestChild(settings, instance, fd)
    tasks = [asyncio.create_task(coro) for coro in (child.run(), child.reporter.run())]
    while line := await control.readline():
        child.control(orjson.loads(line))
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Exception):
            log.error("ledger ingest failed", exc_info=result)
    await child.close()


def main() -> None:
    """Entry point: keep the report stream clean of anything the engine prints."""
    reports = os.dup(1)
    os.dup2(2, 1)
    asyncio.run(serve(sys.argv[1], reports))


if __name__ == "__main__":
    main()
