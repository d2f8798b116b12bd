"""Group commit from the ingest process: copy staged data to disk and fsync the gateway's segments there.

An fsync can be called on any descriptor of a file, from any process. In the gateway each one meant a thread
waking up, the GIL changing hands and the kernel's flush path running on the core that serves requests, a
hundred times a second; here it costs that core nothing. A staged segment (stage.py) is copied from shared
memory into its disk file first, so writeback never touches the pages the gateway maps. While no ingest
process says it is syncing (it is starting, or died), the gateway runs a syncer of its own (journal.py), so
the promise holds throughout: what was appended is on stable storage within about one commit interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gateway.ledger.spill import data_end, fsync_dir, segment_numbers, segment_path
from gateway.ledger.stage import copy_staged, drop_staged, open_staged

log = logging.getLogger("netra.ledger")
_LIST_EVERY = 100  # rounds between directory listings while the live segment stays the same


class SpillSyncer:
    """Keeps descriptors on each of the writer's segments; every round copies and fsyncs what grew (blocking)."""

    def __init__(self, directory: Path, live: Callable[[], int], interval: float, stage: Path | None = None) -> None:
        self._directory = directory
        self._stage = stage
        self._live = live
        self._interval = interval
        self._fds: dict[int, int] = {}
        self._staged: dict[int, int] = {}  # the staged copies of those segments that have one
        self._ends: dict[int, int] = {}  # where each segment's data ended at its last fsync
        self._done: set[int] = set()  # sealed and given their last fsync: never reopened
        self._present: list[int] = []
        self._listed_live = -1
        self._rounds = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sync")

    @property
    def tracked(self) -> list[int]:
        """The segments it still syncs."""
        return sorted(self._fds)

    def sync(self, live: int) -> int:
        """Copy and fsync every segment appended to since the last call; the errors met (blocking).

        A segment below `live` was sealed before the writer moved on, so its fsync here is its last one.
        """
        if live != self._listed_live or not self._fds or self._rounds % _LIST_EVERY == 0:
            self._listed_live, self._present = live, self._list()
            self._done.intersection_update(self._present)
        self._rounds += 1
        errors = self._open(self._present)
        for number in list(self._fds):
            sealed = number not in self._present or bool(live and number < live)
            try:
                if self._grew(number) or sealed:
                    os.fsync(self._fds[number])
            except OSError as exc:
                log.error("ledger spill copy or fsync failed: %s", exc)
                errors += 1
                continue  # a sealed segment is retried next round: its staged copy stays until it is on disk
            if sealed:
                self._retire(number)
        return errors

    def _grew(self, number: int) -> bool:
        # A segment seen for the first time counts as grown: another syncer may have left it unsynced.
        fd, start = self._fds[number], self._ends.get(number)
        first = start is None
        if start is None:
            start = data_end(fd)  # what an earlier syncer already copied is on disk: resume past it
        staged = self._staged.get(number)
        self._ends[number] = end = data_end(fd, start) if staged is None else copy_staged(staged, fd, start)
        return first or end > start

    def _retire(self, number: int) -> None:
        os.close(self._fds.pop(number))
        self._ends.pop(number, None)
        staged = self._staged.pop(number, None)
        if staged is not None and self._stage is not None:
            os.close(staged)
            drop_staged(self._stage, number)
        self._done.add(number)

    def _list(self) -> list[int]:
        try:
            return segment_numbers(self._directory)
        except FileNotFoundError:
            return []  # not created yet, or removed at a clean stop

    def _open(self, present: list[int]) -> int:
        new = [number for number in present if number not in self._fds and number not in self._done]
        for number in new:
            try:
                self._fds[number] = os.open(segment_path(self._directory, number), os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # ingested and deleted in between
            staged = open_staged(self._stage, number)
            if staged is not None:
                self._staged[number] = staged
        if not new:
            return 0
        try:
            fsync_dir(self._directory)  # the new segments' directory entries
        except OSError as exc:
            log.error("ledger spill directory fsync failed: %s", exc)
            return 1
        return 0

    async def run(self, after_round: Callable[[int], None]) -> None:
        """Sync every interval until cancelled; `after_round` hears of the first round and of rounds with errors.

        The rounds run on the syncer's own thread, which sleeps between them: a hundred hand-offs a second
        through the event loop cost more CPU than the rounds themselves.
        """
        loop, stop = asyncio.get_running_loop(), threading.Event()

        def rounds() -> None:
            first = True
            while not stop.is_set():
                errors = self.sync(self._live())
                if errors or first:
                    loop.call_soon_threadsafe(after_round, errors)
                first = False
                stop.wait(self._interval)

        try:
            await loop.run_in_executor(self._executor, rounds)
        finally:
            stop.set()

    def close(self) -> None:
        """Stop the thread and close every descriptor (blocking)."""
        self._executor.shutdown(wait=True)
        for fd in [*self._fds.values(), *self._staged.values()]:
            os.close(fd)
        self._fds.clear()
        self._staged.clear()
