"""The append side of a segment: a preallocated file mapped into memory, so an append is a copy, not a syscall.

A record copied into the shared mapping is in memory the kernel keeps as soon as the copy ends (the page
cache, or the staged copy in tmpfs: stage.py), so it survives the process being killed exactly as a completed
`write` would; group commit (syncer.py) makes it durable against power loss. Two write syscalls per call cost
the event loop more than their own microseconds on a virtual machine (kernel entry and exit flush the CPU's
caches and predictors), which is why the hot path does not make them.

The file is reserved in full when it is created (`posix_fallocate`), so a full disk shows up as a failed
rotation (the writer answers 503 `logging_unavailable`), never as a fault in the middle of a copy. Bytes not
yet written are zero; readers stop at the first zero byte (JSON text never holds one), which also covers a
copy still in progress, and a killed writer's zero tail is cut off by recovery. A segment that stops being
live is unmapped and truncated to its data first.
"""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path

from gateway.ledger.spill import segment_number, segment_path

log = logging.getLogger("netra.ledger")
_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
HEADROOM = 1 << 20  # room past the rotation threshold for the records appended before the check rotates


def _reserve(fd: int, size: int) -> None:
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)
    else:  # no fallocate on this platform: a sparse file (a full disk would then fault the copy)
        os.ftruncate(fd, size)


def _reserved(path: Path, size: int) -> int:
    """A new file at `path` with `size` bytes reserved; its read-write descriptor (removed again on failure)."""
    fd = os.open(path, _CREATE_FLAGS, 0o600)
    try:
        _reserve(fd, size)
    except OSError:
        # A segment that could not be reserved must not survive: readers would take it for a live one.
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    return fd


def _stage(path: Path | None, capacity: int) -> tuple[int | None, Path | None]:
    if path is None:
        return None, None
    try:
        return _reserved(path, capacity), path
    except OSError as exc:
        # Shared memory full or gone: map the disk file itself (slower, but every record still lands).
        log.warning("ledger segment not staged in memory: %s", exc)
        return None, None


def _discard(fd: int | None, path: Path | None) -> None:
    if fd is not None and path is not None:
        os.close(fd)
        path.unlink(missing_ok=True)


class Segment:
    """A segment open for appending: a reserved file, its shared mapping, and the bytes written so far.

    When staged, the mapping is of the staged copy in shared memory (stage.py) and the disk file is only
    reserved; a syncer copies the data across.
    """

    def __init__(self, path: Path, fd: int, capacity: int, staged_fd: int | None = None) -> None:
        self.path = path
        self.number = segment_number(path)
        self.fd = fd
        self.staged_fd = staged_fd
        self.capacity = capacity
        # A staged copy's pages were allocated by the reservation: map them all now, one fault per page saved.
        flags = mmap.MAP_SHARED | (_POPULATE if staged_fd is not None else 0)
        self._map: mmap.mmap | None = mmap.mmap(fd if staged_fd is None else staged_fd, capacity, flags)
        self.size = 0
        self.carried = 0  # bytes of start records carried forward into it at creation

    @classmethod
    def create(
        cls, directory: Path, number: int, initial: bytes, limit: int, needed: int = 0, stage: Path | None = None
    ) -> Segment:
        """A new segment holding `initial` (the start records carried forward), with room to reach `limit`."""
        capacity = max(limit, 2 * len(initial)) + HEADROOM + needed
        # The staged copy first: a syncer that finds a disk file without one takes it as unstaged.
        staged, staged_path = _stage(segment_path(stage, number) if stage is not None else None, capacity)
        path, fd = segment_path(directory, number), None
        try:
            fd = _reserved(path, capacity)
            segment = cls(path, fd, capacity, staged)
        except (OSError, ValueError):
            _discard(fd, path)
            _discard(staged, staged_path)
            raise
        segment.append(initial)
        segment.carried = len(initial)
        return segment

    def full(self, limit: int, length: int) -> bool:
        """Whether to rotate before appending `length` bytes: past `limit` (and what it carried), or out of room."""
        # The second condition keeps rotation amortised when the calls in flight alone outgrow a segment;
        # otherwise every append would rotate and copy them all again.
        past = self.size >= limit and self.size >= 2 * self.carried
        return past or self._map is None or self.size + length > self.capacity

    def append(self, data: bytes) -> None:
        """Copy one or more whole records to the end of the data (OSError once the segment is sealed or full)."""
        end = self.size + len(data)
        if self._map is None or end > self.capacity:
            raise OSError(f"ledger segment {self.path.name} cannot take {len(data)} more bytes")
        self._map[self.size : end] = data
        self.size = end

    def seal(self) -> int:
        """Unmap, and cut the file(s) to the data; the disk file's descriptor, for the caller to close."""
        self.unmap()
        for fd in (self.staged_fd, self.fd):
            try:
                if fd is not None:
                    os.ftruncate(fd, self.size)
            except OSError:
                pass  # only space is lost: readers stop at the first zero byte, and recovery trims the rest
        if self.staged_fd is not None:
            os.close(self.staged_fd)
            self.staged_fd = None
        return self.fd

    def unmap(self) -> None:
        """Drop the mapping (what was copied stays in the file)."""
        if self._map is not None:
            self._map.close()
            self._map = None
