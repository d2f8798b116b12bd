"""The append side of the spill: the writer's active segment, the calls in flight, and group commit.

An append is one `os.write` to the active segment (segment.py): the record survives the process being killed
as soon as the call returns. Against power loss a thread fdatasyncs the spill every commit interval in which
something was appended (commit.py). A write the disk refuses (full, or failing) leaves the writer unhealthy
until a fresh segment takes the rows that failed; new calls get 503 `logging_unavailable` meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.backoff import Backoff
from core.settings import Settings
from gateway.ledger.commit import GroupCommit
from gateway.ledger.ingest import Waker
from gateway.ledger.instance import create_instance, remove_instance
from gateway.ledger.metrics import Backlog, LedgerMetrics
from gateway.ledger.segment import Segment
from gateway.ledger.spill import FINISH, START, encode

log = logging.getLogger("netra.ledger")
MAX_RETRY_ROWS = 10_000  # finished rows held in memory while the spill cannot be written
_HEAL_FIRST, _HEAL_MAX = 0.05, 1.0  # pauses between failed heals (the first heal is tried at once)


class Journal:
    """The writer's own instance directory and everything appended to it."""

    def __init__(
        self, settings: Settings, instance: str, metrics: LedgerMetrics, backlog: Backlog, waker: Waker,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self.instance = instance
        self._metrics, self._backlog, self._waker, self._clock = metrics, backlog, waker, clock
        self.directory: Path | None = None
        self._lock_fd: int | None = None
        self.segment: Segment | None = None
        self._commit: GroupCommit | None = None
        self.numbers: deque[int] = deque()  # own segments on disk, oldest first
        self.in_flight: dict[str, bytes] = {}  # request id -> start record, until its finish is on disk
        self.retry: deque[tuple[str, bytes]] = deque()  # finish records waiting for the spill to work again
        self.broken = False
        self.closed = False
        self._next_number = 1
        self._broke = asyncio.Event()
        self._heal_backoff = Backoff(_HEAL_FIRST, _HEAL_MAX)
        self._task: asyncio.Task[None] | None = None

    @property
    def ok(self) -> bool:
        """Whether appends can go straight to the active segment."""
        return self.segment is not None and not self.broken and not self.retry and not self.closed

    def position(self) -> tuple[int, int]:
        """(segment, offset) just past the last record appended."""
        return (self.segment.number, self.segment.size) if self.segment is not None else (0, 0)

    def live(self, number: int) -> bool:
        """Whether segment `number` may still be appended to."""
        return self.segment is not None and self.segment.number == number

    def open(self) -> None:
        """Create and lock the instance directory, start group commit, and create the first segment."""
        if self.directory is None:
            self.directory, self._lock_fd = create_instance(self._settings.spill_dir, self.instance)
            interval = self._settings.ledger_commit_interval
            self._commit = GroupCommit(self.directory, interval, self._metrics.spill_errors.inc)
            self._commit.start()
        self._rotate()

    def start_call(self, row: dict[str, Any]) -> None:
        """Append a start record and remember the call as in flight; raises OSError if it is not written."""
        request_id, line = row["request_id"], encode(START, row)
        self._append(line)
        self.in_flight[request_id] = line

    def finish_call(self, row: dict[str, Any]) -> None:
        """Append a finish record; on failure keep it for the background to append (never raises)."""
        request_id = str(row.get("request_id"))
        try:
            line = encode(FINISH, row)
        except TypeError:
            log.exception("ledger row cannot be serialised; dropped", extra={"request_id": request_id})
            self._drop(request_id)
            return
        if self._backlog.rows <= 0:
            self._backlog.mark = self._clock()
        self._backlog.rows += 1
        if not self.ok:
            self._hold(request_id, line)
            return
        try:
            self._append(line)
        except OSError as exc:
            self._failed(exc)
            self._hold(request_id, line)
            return
        self._finished(request_id)

    def _finished(self, request_id: str) -> None:
        self.in_flight.pop(request_id, None)
        self._waker.appended()

    def _hold(self, request_id: str, line: bytes) -> None:
        if self.closed or len(self.retry) >= MAX_RETRY_ROWS:
            self._backlog.rows -= 1
            self._drop(request_id)
            return
        self.retry.append((request_id, line))

    def _drop(self, request_id: str) -> None:
        self._metrics.rows_dropped.inc()
        self.in_flight.pop(request_id, None)
        log.error("ledger row dropped: the spill cannot take it", extra={"request_id": request_id})

    def _append(self, data: bytes) -> None:
        segment = self.segment
        if segment is None or self.broken or self.closed:
            raise OSError("the ledger spill is not writable")
        if segment.full(self._settings.ledger_segment_bytes):
            segment = self._rotate()
        segment.append(data)
        self._backlog.bytes += len(data)
        self._backlog.disk_bytes += len(data)
        assert self._commit is not None
        self._commit.dirty = True

    def _rotate(self) -> Segment:
        """Open the next segment, carrying forward the start records of every call still in flight."""
        assert self.directory is not None and self._commit is not None
        number, self._next_number = self._next_number, self._next_number + 1
        segment = Segment.create(self.directory, number, b"".join(self.in_flight.values()))
        if self.segment is not None:
            self._commit.seal(self.segment.fd)
        self._commit.follow(segment.fd)
        self.segment = segment
        self.numbers.append(number)
        self._backlog.bytes += segment.size
        self._backlog.disk_bytes += segment.size
        self._waker.poke()
        return segment

    def failed(self, exc: OSError) -> None:
        """Note a failed append or open: unhealthy until the background heals it."""
        self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        if not self.broken:
            log.error("ledger spill write failed; refusing new calls until it works again: %s", exc)
        self.broken = True
        self._metrics.spill_errors.inc()
        self._broke.set()

    async def heal_loop(self) -> None:
        """While the spill is broken, retry with backoff: a fresh segment, then the rows held in memory."""
        while not self.closed:
            await self._broke.wait()
            self._broke.clear()
            if not self.ok and not self.closed:
                # On the loop, as appends are: a rare path, and the journal is never touched from two threads.
                await asyncio.sleep(self._heal())  # a failed try sets `_broke` again

    def _heal(self) -> float:
        """Move to a fresh segment and append the held rows; the pause before the next try."""
        try:
            if self.directory is None:
                self.open()
            elif self.broken or self.segment is None:
                self._rotate()
            self.broken = False
            while self.retry:
                request_id, line = self.retry[0]
                self._append(line)
                self.retry.popleft()
                self._finished(request_id)
        except OSError as exc:
            self._failed(exc)
            return self._heal_backoff.next()
        log.info("ledger spill writable again")
        self._heal_backoff.reset()
        return 0.0

    def start_heals(self) -> None:
        """Start the task that heals a broken spill (it waits while nothing is broken)."""
        self._task = asyncio.create_task(self.heal_loop(), name="ledger-heal")

    async def stop(self) -> None:
        """Stop appending, seal the last segment, and give everything a last fdatasync."""
        self.closed = True
        await self._stop_heals()
        segment, self.segment = self.segment, None
        if self._commit is not None:
            if segment is not None:
                self._commit.seal(segment.fd)
            if await asyncio.to_thread(self._commit.close):  # every segment is sealed now
                log.error("ledger spill not fully synced at close: the next start-up replays it")

    async def _stop_heals(self) -> None:
        if self._task is not None:
            self._broke.set()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def sync_now(self) -> int:
        """One group-commit round right now; the errors (blocking)."""
        return self._commit.sync() if self._commit is not None else 0

    async def abandon(self) -> None:
        """Test-only: close every descriptor as a killed process would, without syncing or flushing."""
        self.closed = True
        await self._stop_heals()
        if self._commit is not None:
            self._commit.abandon()
        self.segment = None
        self.release(remove=False)

    def release(self, remove: bool) -> None:
        """Release the instance's lock, deleting the directory first if nothing in it is still needed."""
        if remove and self.directory is not None:
            remove_instance(self.directory)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
