"""The append side of the spill: the writer's active segment, the calls in flight, and group commit.

Appends are copies into the active segment's shared mapping (segment.py; staged in shared memory, stage.py): the
record survives the process being killed as soon as the copy returns. Against power loss the segments are copied
to disk and fsynced every commit interval: by the ingest process while one says it is syncing (syncer.py), else
by a syncer run from a thread here.
A segment that cannot be created (disk full) leaves the writer unhealthy until a fresh one takes the rows
that failed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from core.settings import Settings
from gateway.ledger.ingest import Waker
from gateway.ledger.instance import create_instance, remove_instance
from gateway.ledger.metrics import Backlog, LedgerMetrics
from gateway.ledger.segment import Segment
from gateway.ledger.spill import FINISH, START, encode
from gateway.ledger.stage import make_stage, release_stage, staged
from gateway.ledger.syncer import SpillSyncer

log = logging.getLogger("netra.ledger")
MAX_RETRY_ROWS = 10_000  # finished rows held in memory while the spill cannot be written
_HEAL_FIRST, _HEAL_MAX = 0.05, 1.0


class Journal:
    """The writer's own instance directory and everything appended to it."""

    def __init__(
        self, settings: Settings, instance: str, metrics: LedgerMetrics, backlog: Backlog, waker: Waker,
        clock: Callable[[], float], synced_elsewhere: Callable[[], bool] = lambda: False,
    ) -> None:
        self._settings = settings
        self._synced_elsewhere = synced_elsewhere  # the ingest process does group commit (syncer.py)
        self.instance = instance
        self._metrics, self._backlog, self._waker, self._clock = metrics, backlog, waker, clock
        self.directory: Path | None = None
        self._lock_fd: int | None = None
        self.segment: Segment | None = None
        self.stage: Path | None = None  # where the live segment is staged in memory (stage.py), if anywhere
        self._syncer: SpillSyncer | None = None  # group commit while no ingest process does it
        self.numbers: deque[int] = deque()  # own segments on disk, oldest first
        self.in_flight: dict[str, bytes] = {}  # request id -> start record, until its finish is on disk
        self.retry: deque[tuple[str, bytes]] = deque()  # finish records waiting for the spill to work again
        self.broken = False
        self.closed = False
        self._next_number = 1
        self._dirty = asyncio.Event()
        self._stopping = False
        self._heal_delay = _HEAL_FIRST
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-commit")

    @property
    def ok(self) -> bool:
        """Whether appends can go straight to the active segment."""
        return self.segment is not None and not self.broken and not self.retry and not self.closed

    def position(self) -> tuple[int, int]:
        """(segment, offset) just past the last record appended."""
        return (self.segment.number, self.segment.size) if self.segment is not None else (0, 0)

    def live(self, number: int) -> bool:
        """Whether segment `number` may still grow on disk (appended to, or its staged copy not all copied)."""
        return (self.segment is not None and self.segment.number == number) or staged(self.stage, number)

    def open(self) -> None:
        """Create and lock the instance directory and its first segment."""
        if self.directory is None:
            self.directory, self._lock_fd = create_instance(self._settings.spill_dir, self.instance)
            self.stage = make_stage(self._settings.stage_dir, self.instance)
            interval = self._settings.ledger_commit_interval
            self._syncer = SpillSyncer(self.directory, self._live_number, interval, self.stage)
        self._rotate()

    def _live_number(self) -> int:
        # Every segment below it is sealed; once the journal is closed, all of them are.
        return self.segment.number if self.segment is not None else self._next_number

    def start_call(self, row: dict[str, Any]) -> None:
        """Append a start record and remember the call as in flight; raises OSError if it is not on disk."""
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
        if segment.full(self._settings.ledger_segment_bytes, len(data)):
            segment = self._rotate(len(data))
        segment.append(data)
        self._backlog.bytes += len(data)
        self._backlog.disk_bytes += len(data)
        self._dirty.set()

    def _rotate(self, needed: int = 0) -> Segment:
        """Open the next segment, carrying forward the start records of every call still in flight."""
        assert self.directory is not None
        number, self._next_number = self._next_number, self._next_number + 1
        initial = b"".join(self.in_flight.values())
        limit = self._settings.ledger_segment_bytes
        segment = Segment.create(self.directory, number, initial, limit, needed, self.stage)
        if self.segment is not None:
            os.close(self.segment.seal())  # the syncer fsyncs it by name
        self.segment = segment
        self.numbers.append(number)
        self._backlog.bytes += segment.size
        self._backlog.disk_bytes += segment.size
        self._dirty.set()
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
        self._dirty.set()

    async def commit_loop(self) -> None:
        """Group commit: fsync new data at most every commit interval, and heal a broken spill."""
        interval = self._settings.ledger_commit_interval
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await self._dirty.wait()
            self._dirty.clear()
            began = loop.time()
            pause = await self._heal() if not self.ok and not self.closed else 0.0
            await self._sync()
            await asyncio.sleep(max(pause, interval - (loop.time() - began)))

    async def _heal(self) -> float:
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
            self._heal_delay = min(self._heal_delay * 2, _HEAL_MAX)
            return self._heal_delay
        log.info("ledger spill writable again")
        self._heal_delay = _HEAL_FIRST
        return 0.0

    async def _sync(self) -> None:
        if self._synced_elsewhere() or self._syncer is None:
            return
        loop = asyncio.get_running_loop()
        errors = await loop.run_in_executor(self._executor, self._syncer.sync, self._live_number())
        self._metrics.spill_errors.inc(errors)

    def start_commits(self) -> None:
        """Start the group-commit task."""
        self._task = asyncio.create_task(self.commit_loop(), name="ledger-commit")

    async def stop(self) -> None:
        """Stop appending; the commit task does its last sync, then every segment descriptor is closed."""
        self.closed = True
        self._stopping = True
        self._dirty.set()
        if self._task is not None:
            await self._task
        segment, self.segment = self.segment, None
        if segment is not None:
            os.close(segment.seal())
        await asyncio.get_running_loop().run_in_executor(self._executor, self._final_sync)
        await asyncio.to_thread(self._executor.shutdown, True)

    def sync_now(self) -> int:
        """One group-commit round right now: staged data copied to disk and fsynced; the errors (blocking)."""
        return self._syncer.sync(self._live_number()) if self._syncer is not None else 0

    def _final_sync(self) -> None:
        if self._syncer is not None:
            if self.sync_now():  # every segment is sealed now
                log.error("ledger spill not fully synced at close: the next start-up replays it")
            self._syncer.close()

    async def abandon(self) -> None:
        """Test-only: close every descriptor as a killed process would, without syncing or flushing."""
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown, True)
        if self.segment is not None:
            self.segment.unmap()  # as a killed process would leave it: the reserved tail still zero
            for fd in (self.segment.fd, self.segment.staged_fd):
                if fd is not None:
                    os.close(fd)
        if self._syncer is not None:
            self._syncer.close()
        self.segment = None
        self.release(remove=False)

    def release(self, remove: bool) -> None:
        """Release the instance's lock, deleting the directory first if nothing in it is still needed."""
        if remove and self.directory is not None:
            remove_instance(self.directory)
        release_stage(self.stage)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
