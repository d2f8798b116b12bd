"""Group commit from the ingest process: fsync the gateway's segments so the gateway's own core does not.

An fsync can be called on any descriptor of a file, from any process, and flushes every page of it, including
those the gateway copied in through its mapping. In the gateway each one meant a thread waking up, the GIL
changing hands and the kernel's flush path running on the core that serves requests, a hundred times a
second; here it costs that core nothing. While no ingest process says it is syncing (it is starting, or
died), the gateway fsyncs itself (journal.py), so the promise holds throughout: what was appended is on
stable storage within about one commit interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gateway.ledger.spill import fsync_dir, segment_numbers, segment_path

log = logging.getLogger("netra.ledger")
_LIST_EVERY = 100  # rounds between directory listings while the live segment stays the same
_SCAN = 256 * 1024


def _fsync(fd: int) -> int:
    try:
        os.fsync(fd)
    except OSError as exc:
        log.error("ledger spill fsync failed: %s", exc)
        return 1
    return 0


class SpillSyncer:
    """Keeps a descriptor on each of the gateway's segments and fsyncs them (and their directory) every interval."""

    def __init__(self, directory: Path, live: Callable[[], int], interval: float) -> None:
        self._directory = directory
        self._live = live
        self._interval = interval
        self._fds: dict[int, int] = {}
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
        """fsync every segment the gateway appended to since the last call; the errors met (blocking).

        A segment below `live` was sealed before the gateway moved on, so its fsync here is its last one.
        """
        if live != self._listed_live or not self._fds or self._rounds % _LIST_EVERY == 0:
            self._listed_live, self._present = live, self._list()
            self._done.intersection_update(self._present)
        self._rounds += 1
        errors = self._open(self._present)
        for number, fd in list(self._fds.items()):
            sealed = number not in self._present or bool(live and number < live)
            if sealed or self._grew(number, fd):
                errors += _fsync(fd)
            if sealed:
                os.close(self._fds.pop(number))
                self._ends.pop(number, None)
                self._done.add(number)
        return errors

    def _list(self) -> list[int]:
        try:
            return segment_numbers(self._directory)
        except FileNotFoundError:
            return []  # not created yet, or removed at a clean stop

    def _grew(self, number: int, fd: int) -> bool:
        # The data ends at the first zero byte: read on from where it ended last time (usually one read).
        start = end = self._ends.get(number, 0)
        while chunk := os.pread(fd, _SCAN, end):
            zero = chunk.find(b"\0")
            end += zero if zero >= 0 else len(chunk)
            if zero >= 0:
                break
        self._ends[number] = end
        return end > start

    def _open(self, present: list[int]) -> int:
        new = [number for number in present if number not in self._fds and number not in self._done]
        for number in new:
            try:
                self._fds[number] = os.open(segment_path(self._directory, number), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # ingested and deleted in between
        if not new:
            return 0
        try:
            fsync_dir(self._directory)  # the new segments' directory entries
        except OSError as exc:
            log.error("ledger spill directory fsync failed: %s", exc)
            return 1
        return 0

    async def run(self, after_round: Callable[[int], None]) -> None:
        """Sync every interval until cancelled, telling `after_round` how many errors each round met."""
        loop = asyncio.get_running_loop()
        while True:
            after_round(await loop.run_in_executor(self._executor, self.sync, self._live()))
            await asyncio.sleep(self._interval)

    def close(self) -> None:
        """Stop the thread and close every descriptor (blocking)."""
        self._executor.shutdown(wait=True)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
