"""Group commit: a thread that fdatasyncs the spill every commit interval in which something was appended.

The event loop only marks the journal dirty (an attribute store); the thread wakes every interval, and when
the mark is set it fdatasyncs the live segment, the segments sealed since its last round (closing them after
their last sync) and, after a rotation, the directory that holds the new segment's entry. So a power cut
loses at most about one commit interval; a killed process loses nothing (its writes are in the page cache).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from gateway.ledger.spill import fsync_dir

log = logging.getLogger("netra.ledger")


class GroupCommit:
    """Owns the descriptors of sealed segments until their last fdatasync; syncs the live one while it is live."""

    def __init__(self, directory: Path, interval: float, on_errors: Callable[[int], None]) -> None:
        self._directory = directory
        self._interval = interval
        self._on_errors = on_errors  # called from the thread with the number of failed syncs in a round
        self._lock = threading.Lock()  # guards the hand-over of descriptors, never held across a sync
        self._live: int | None = None
        self._sealed: list[int] = []
        self._new_entry = False
        self.dirty = False  # set by the event loop on every append, cleared by the thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-commit", daemon=True)

    def start(self) -> None:
        """Start the commit thread."""
        self._thread.start()

    def follow(self, fd: int) -> None:
        """A new live segment (the previous one, if any, was sealed): sync its directory entry too."""
        with self._lock:
            self._live, self._new_entry = fd, True
        self.dirty = True

    def seal(self, fd: int) -> None:
        """Take over a segment's descriptor: it gets its last fdatasync, then is closed."""
        with self._lock:
            if self._live == fd:
                self._live = None
            self._sealed.append(fd)
        self.dirty = True

    def sync(self) -> int:
        """One round now: fdatasync what was appended to since the last one; the errors met (blocking)."""
        self.dirty = False
        with self._lock:
            live, sealed, self._sealed = self._live, self._sealed, []
            new_entry, self._new_entry = self._new_entry, False
        errors = sum(_sync(fd) for fd in sealed)
        for fd in sealed:
            os.close(fd)
        if live is not None:
            errors += _sync(live)
        if new_entry:
            errors += _sync_dir(self._directory)
        return errors

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self.dirty:
                errors = self.sync()
                if errors:
                    self._on_errors(errors)

    def abandon(self) -> None:
        """Test-only: stop and close every descriptor without syncing, as a killed process would."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            fds, self._sealed = self._sealed, []
            if self._live is not None:
                fds.append(self._live)
            self._live = None
        for fd in fds:
            os.close(fd)

    def close(self) -> int:
        """Stop the thread, then a last round (every segment is sealed by now); the errors met (blocking)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.sync()


def _sync(fd: int) -> int:
    try:
        os.fdatasync(fd)
    except OSError as exc:
        log.error("ledger spill fdatasync failed: %s", exc)
        return 1
    return 0


def _sync_dir(directory: Path) -> int:
    try:
        fsync_dir(directory)
    except OSError as exc:
        log.error("ledger spill directory fsync failed: %s", exc)
        return 1
    return 0
