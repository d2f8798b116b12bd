"""Ingest: finish records go from segment files to the sink in batches that are sent exactly once.

A batch is a byte range of one segment. Its boundary is written (and fsynced) to the segment's ack log as
"pending" before it is sent and as "acked" after, and its token is derived from the boundary, so a batch
interrupted by a crash is re-sent with the same rows and token and the sink drops the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from core.backoff import Backoff
from core.callrow import finished_us
from core.clickhouse import refused_as_data
from core.settings import Settings
from gateway.ledger.base import RowSink
from gateway.ledger.metrics import Backlog, LedgerMetrics
from gateway.ledger.spill import (
    Batch,
    SegmentReader,
    ack_path,
    append_ack,
    delete_segment,
    read_acks,
    segment_number,
    set_aside,
)

T = TypeVar("T")
log = logging.getLogger("netra.ledger")
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0
IDLE_POLL = 1.0
REJECTED_FILE = "rejected.jsonl"
DONE = 1 << 62  # the offset reported once a segment is fully ingested and deleted


class Waker:
    """Wakes the ingest loop when enough rows were appended, a segment rotated, or someone is waiting."""

    def __init__(self, max_wait: float = IDLE_POLL) -> None:
        self._event = asyncio.Event()
        self._max_wait = max_wait  # the longest sleep: a reader nobody tells about appends must poll
        self._appended = 0
        self._wake_at = 1
        self.urgent = 0  # drains (and close) waiting: flush as soon as the reader has caught up

    def appended(self) -> None:
        """A finish record was appended (the hot path: one add, one compare)."""
        self._appended += 1
        if self._appended >= self._wake_at:
            self._event.set()

    def poke(self) -> None:
        """Wake the ingest loop now."""
        self._event.set()

    def arm(self) -> None:
        """Forget earlier wake-ups; called before reading, so one that comes during the read is kept."""
        self._event.clear()

    async def wait(self, rows: int, within: float) -> None:
        """Sleep until `rows` more finish records were appended, a poke, or the timeout."""
        self._wake_at = self._appended + max(rows, 1)
        within = min(within, self._max_wait)
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that races the event being set.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(within, 0.0)):
                await self._event.wait()


class Ingestor:
    """Reads segments, sends their finish rows in batches, and deletes each segment once it is done."""

    def __init__(
        self, settings: Settings, sink: RowSink, metrics: LedgerMetrics, backlog: Backlog, waker: Waker,
        clock: Callable[[], float],
    ) -> None:
        self._batch_rows = max(1, settings.ledger_batch_rows)
        self._flush_interval = settings.ledger_flush_interval
        self._sink = sink
        self._metrics = metrics
        self._backlog = backlog
        self._waker = waker
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-ingest")
        self._rejected = settings.spill_dir / REJECTED_FILE

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking file work on the ingest thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def io_retry(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking file work, retrying failures with backoff (the files are the only copy of the rows)."""
        backoff = Backoff(FIRST_BACKOFF, MAX_BACKOFF)
        while True:
            try:
                return await self.io(fn, *args)
            except OSError as exc:
                self._metrics.spill_errors.inc()
                delay = backoff.next()
                log.error("ledger spill I/O failed; retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)

    async def ingest_segment(
        self, instance: str, path: Path, live: Callable[[], bool], report: Callable[[int], None]
    ) -> None:
        """Send every finish record of one segment, then delete it once it is no longer live."""
        state = await self.io_retry(read_acks, ack_path(path))
        reader = SegmentReader(path, state.acked)
        report(state.acked)
        try:
            if state.pending is not None:
                await self._resend(instance, path, reader, state.pending)
                report(reader.offset)
            while (batch := await self._collect(reader, live, report)) is not None:
                await self._send(instance, path, batch)
                report(batch.end)
            leftover = await self.io_retry(reader.size) - reader.offset
        finally:
            await self.io(reader.close)
        self._backlog.bytes -= leftover  # a torn fragment at the end, never to be completed
        self._backlog.disk_bytes -= await self.io_retry(delete_segment, path)
        report(DONE)

    async def _resend(self, instance: str, path: Path, reader: SegmentReader, pending: tuple[int, int]) -> None:
        # Exactly the boundaries recorded before the crash, so the token matches and the sink dedups it.
        batch = Batch(pending[0], pending[0])
        await self.io_retry(reader.fill, batch, 1 << 62, pending[1])
        self._note_rows(batch)
        await self._send(instance, path, batch)

    async def _collect(
        self, reader: SegmentReader, live: Callable[[], bool], report: Callable[[int], None]
    ) -> Batch | None:
        """The next batch to send, or None when the segment is no longer live and fully read."""
        batch = Batch(reader.offset, reader.offset)
        deadline: float | None = None
        while True:
            self._waker.arm()
            was_live = live()  # checked before reading: nothing is appended to a segment once it is not live
            caught_up = await self.io_retry(reader.fill, batch, self._batch_rows)
            self._note_rows(batch)
            if not batch.rows:
                self._skip(batch, report)
            if len(batch.rows) >= self._batch_rows or (caught_up and not was_live):
                return batch if batch.rows else None
            now = time.monotonic()
            if batch.rows and deadline is None:
                deadline = now + self._flush_interval
            if deadline is not None and (now >= deadline or self._waker.urgent):
                return batch
            # An empty batch wakes on the first new row (starting its flush clock), a partial one when full.
            if deadline is None:
                await self._waker.wait(1, IDLE_POLL)
            else:
                await self._waker.wait(self._batch_rows - len(batch.rows), deadline - now)

    def _skip(self, batch: Batch, report: Callable[[int], None]) -> None:
        # Only start records were read: nothing to send, but the reader's progress counts.
        if batch.end > batch.start:
            self._backlog.bytes -= batch.end - batch.start
            batch.start = batch.end
            report(batch.end)

    def _note_rows(self, batch: Batch) -> None:
        if batch.rows and self._backlog.oldest_us is None:
            finished = finished_us(batch.rows[0])
            self._backlog.oldest_us = finished if finished is not None else int(self._clock() * 1_000_000)

    async def _send(self, instance: str, path: Path, batch: Batch) -> None:
        """Record the boundary, insert until the sink takes it, record the acknowledgement."""
        token = f"{instance}:{segment_number(path)}:{batch.start}:{batch.end}"
        ack = ack_path(path)
        await self.io_retry(append_ack, ack, f"pending {batch.start} {batch.end}", True)
        rejected = await self._insert(batch.rows, token)
        # Not fsynced: if this line is lost the batch is re-sent under the same token, and the next
        # "pending" line's fsync makes it durable anyway.
        await self.io_retry(append_ack, ack, f"acked {batch.end}", False)
        self._metrics.rows_written.inc(len(batch.rows) - rejected)
        self._backlog.rows -= len(batch.rows)
        self._backlog.bytes -= batch.end - batch.start
        self._backlog.oldest_us = None
        self._backlog.mark = self._clock()

    async def _insert(self, rows: list[bytes], token: str) -> int:
        """Insert until the sink takes the rows; how many it refused as data (set aside, not retried)."""
        backoff = Backoff(FIRST_BACKOFF, MAX_BACKOFF)
        while True:
            try:
                await self._sink.run(self._sink.insert_rows, rows, token)
                return 0
            except Exception as exc:  # any failure of the sink is retried: the rows exist only on disk
                self._metrics.insert_errors.inc()
                if refused_as_data(exc):
                    return await self._split(rows, token, exc)
                delay = backoff.next()
                log.warning("ledger insert of %d rows failed; retrying in %.1fs: %r", len(rows), delay, exc)
            await asyncio.sleep(delay)

    async def _split(self, rows: list[bytes], token: str, exc: Exception) -> int:
        # Halves under tokens derived from the batch's, so a re-send after a crash splits (and dedups) the same way.
        if len(rows) > 1:
            middle = len(rows) // 2
            return await self._insert(rows[:middle], f"{token}/a") + await self._insert(rows[middle:], f"{token}/b")
        reason = str(exc)[:2000]
        await self.io_retry(set_aside, self._rejected, rows[0], token, reason)
        self._metrics.rows_rejected.inc()
        log.error("ClickHouse refused a ledger row; set aside in %s: %s", self._rejected, reason)
        return 1

    async def close(self) -> None:
        """Stop the ingest thread once its current job is done."""
        await asyncio.to_thread(self._executor.shutdown, True)
