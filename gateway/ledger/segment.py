"""The append side of a segment: a file opened with O_APPEND, one `os.write` per record.

A completed `write` is in the page cache, so the record survives the process being killed (kill -9, a crash)
as soon as the call returns; group commit (commit.py) makes it durable against power loss. A full disk shows
up as the write failing (ENOSPC, or a short write whose fragment is cut off again): the writer then answers
503 `logging_unavailable` until a fresh segment takes the rows that failed (journal.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.ledger.spill import ShortWrite, segment_number, segment_path

_CREATE_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class Segment:
    """A segment open for appending: its descriptor and the bytes written so far."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.number = segment_number(path)
        self.fd = fd
        self.size = 0
        self.carried = 0  # bytes of start records carried forward into it at creation

    @classmethod
    def create(cls, directory: Path, number: int, initial: bytes) -> Segment:
        """A new segment holding `initial` (the start records carried forward)."""
        path = segment_path(directory, number)
        segment = cls(path, os.open(path, _CREATE_FLAGS, 0o600))
        try:
            if initial:
                segment.append(initial)
        except OSError:
            # A segment that could not take its first records must not survive: it would lose calls in flight.
            os.close(segment.fd)
            path.unlink(missing_ok=True)
            raise
        segment.carried = len(initial)
        return segment

    def full(self, limit: int) -> bool:
        """Whether to rotate before the next append: past `limit`, and twice what it carried."""
        # The second condition keeps rotation amortised when the calls in flight alone outgrow a segment;
        # otherwise every append would rotate and copy them all again.
        return self.size >= limit and self.size >= 2 * self.carried

    def append(self, data: bytes) -> None:
        """Write one or more whole records at the end (OSError when the disk refuses them)."""
        written = os.write(self.fd, data)
        if written != len(data):
            # A torn record would swallow the next one: cut it off (readers skip it if that fails too).
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass
            raise ShortWrite(written, len(data))
        self.size += written
