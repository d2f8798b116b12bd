"""The spill's on-disk format: numbered segment files of JSON-line records, and each segment's ack log.

A segment is a sequence of newline-terminated records `{"t":"s","r":{start row}}` (a call started) and
`{"t":"f","r":{ledger row}}` (a call finished), appended with one `write` each (segment.py). Only complete
lines count: a trailing fragment is either still being written (the live segment) or was torn by a killed
process. Data also ends at a zero byte (a file system may leave zeros past the last fdatasync after a power cut).
The ack log `<number>.ack` holds lines "pending START END" (written and fsynced before a batch is sent)
and "acked END" (after the sink took it); its last complete line tells where ingest resumes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from core.callrow import spill_form

START = "s"
FINISH = "f"
_START_PREFIX = b'{"t":"s"'
_FINISH_PREFIX = b'{"t":"f","r":{'
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_TAIL_CHUNK = 64 * 1024
_READ_CHUNK = 256 * 1024


def _default(value: Any) -> Any:
    # Money may arrive as Decimal; the row format keeps it as a plain decimal string (no exponent).
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"cannot spill a {type(value).__name__}")


def encode(kind: str, row: dict[str, Any]) -> bytes:
    """One record as a newline-terminated JSON line; a finish record's row is already in insert form."""
    body = spill_form(row) if kind == FINISH else row
    return orjson.dumps({"t": kind, "r": body}, default=_default, option=orjson.OPT_APPEND_NEWLINE)


def set_aside(path: Path, row: bytes, token: str, reason: str) -> None:
    """Append a row ClickHouse refused, with why, to the rejected-rows file, durably (blocking)."""
    line = orjson.dumps({"token": token, "error": reason, "row": row.decode("utf-8", "replace")})
    fd = os.open(path, _APPEND_FLAGS, 0o600)
    try:
        write_all(fd, line + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_path(directory: Path, number: int) -> Path:
    """Where segment `number` of an instance lives."""
    return directory / f"{number:012d}.seg"


def ack_path(segment: Path) -> Path:
    """The ack log beside a segment."""
    return segment.with_suffix(".ack")


def segment_number(segment: Path) -> int:
    """The number in a segment's file name."""
    return int(segment.stem)


def segment_numbers(directory: Path) -> list[int]:
    """The numbers of the segments in an instance directory, ascending."""
    return sorted(int(path.stem) for path in directory.glob("*.seg") if path.stem.isdigit())


class ShortWrite(OSError):
    """Only part of a write reached the file (the disk filled up midway)."""

    def __init__(self, written: int, wanted: int) -> None:
        super().__init__(errno.ENOSPC, f"short write to the spill ({written} of {wanted} bytes)")


def write_all(fd: int, data: bytes) -> int:
    """One write of `data`; a short write is an error that says how much went out."""
    written = os.write(fd, data)
    if written != len(data):
        raise ShortWrite(written, len(data))
    return written


@dataclass
class Batch:
    """Finish rows read from one segment, and the byte range [start, end) they were read from."""

    start: int
    end: int
    rows: list[bytes] = field(default_factory=list)  # each a JSONEachRow line


class SegmentReader:
    """Reads the complete records of one segment from an offset on; a trailing fragment is left alone.

    Reads are unbuffered (`pread` from the offset each time), so a live segment's new records are seen.
    """

    def __init__(self, path: Path, offset: int) -> None:
        self._path = path
        self._fd: int | None = None
        self.offset = offset
        self.bad_lines = 0

    def _handle(self) -> int:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        return self._fd

    def fill(self, batch: Batch, limit: int, end: int | None = None) -> bool:
        """Add finish rows to `batch` until it holds `limit` rows or `end` is reached; True at the last line."""
        chunk = _READ_CHUNK
        while len(batch.rows) < limit and (end is None or self.offset < end):
            data = os.pread(self._handle(), chunk, self.offset)
            written = data.find(b"\0")  # the data ends at the first zero byte (blocks a power cut left unwritten)
            complete = data.rfind(b"\n", 0, written if written >= 0 else len(data)) + 1
            if not complete:
                if len(data) < chunk or written >= 0:
                    return True
                chunk *= 2  # one line longer than a chunk
                continue
            self._take(data[:complete], batch, limit, end)
        return False

    def _take(self, data: bytes, batch: Batch, limit: int, end: int | None) -> None:
        start = 0
        while start < len(data):
            if len(batch.rows) >= limit or (end is not None and self.offset >= end):
                return
            stop = data.index(b"\n", start) + 1
            line, start = data[start:stop], stop
            self.offset += len(line)
            batch.end = self.offset
            row = self._finish_row(line)
            if row is not None:
                batch.rows.append(row)

    def _finish_row(self, line: bytes) -> bytes | None:
        # Start records are skipped unparsed: ingest needs only the finished rows, and those are cut out of
        # their line as they are (the row object between the record's prefix and its closing brace).
        if line.startswith(_START_PREFIX):
            return None
        if line.startswith(_FINISH_PREFIX) and line.endswith(b"}}\n"):
            return line[len(_FINISH_PREFIX) - 1 : -2]
        kind, row = _parse(line)
        if kind is None:
            self.bad_lines += 1
        return orjson.dumps(spill_form(row)) if kind == FINISH else None

    def size(self) -> int:
        """The segment file's current size."""
        return os.fstat(self._handle()).st_size

    def close(self) -> None:
        """Close the file if it was opened."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _parse(line: bytes) -> tuple[str | None, dict[str, Any]]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, {}
    if not isinstance(record, dict) or not isinstance(record.get("r"), dict) or record.get("t") not in (START, FINISH):
        return None, {}
    return record["t"], record["r"]


def records(path: Path) -> Iterator[tuple[str, dict[str, Any], int]]:
    """(kind, row, end offset) of every complete, well-formed record in a segment."""
    offset = 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            kind, row = _parse(line)
            if kind is not None:
                yield kind, row, offset


def data_end(fd: int, start: int = 0) -> int:
    """Where a segment's data ends: at its first zero byte (blocks a power cut left unwritten), or EOF."""
    end = start
    while chunk := os.pread(fd, _READ_CHUNK, end):
        zero = chunk.find(b"\0")
        end += zero if zero >= 0 else len(chunk)
        if zero >= 0:
            break
    return end


def trim_torn_tail(path: Path) -> int:
    """Cut a segment back to its last complete line (only for a segment no process writes); its new size."""
    with path.open("r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        position = data_end(handle.fileno())
        while position > 0:
            start = max(0, position - _TAIL_CHUNK)
            handle.seek(start)
            newline = handle.read(position - start).rfind(b"\n")
            if newline >= 0:
                position = start + newline + 1
                break
            position = start
        if position != size:
            handle.truncate(position)
        return position


@dataclass(frozen=True)
class AckState:
    """How far a segment's finish records are acknowledged, and a batch sent but not yet acknowledged."""

    acked: int = 0
    pending: tuple[int, int] | None = None


def read_acks(path: Path) -> AckState:
    """The state recorded in an ack log (nothing acknowledged when there is none)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return AckState()
    acked, pending = 0, None
    for line in data.split(b"\n")[:-1]:
        parts = line.split()
        if len(parts) == 2 and parts[0] == b"acked" and parts[1].isdigit():
            acked, pending = max(acked, int(parts[1])), None
        elif len(parts) == 3 and parts[0] == b"pending" and parts[1].isdigit() and parts[2].isdigit():
            pending = (int(parts[1]), int(parts[2]))
    if pending is not None and pending[1] <= acked:
        pending = None
    return AckState(acked, pending)


def append_ack(path: Path, line: str, sync: bool) -> None:
    """Append one line to an ack log, fsynced (with its directory entry when new) if `sync`."""
    created = not path.exists()
    fd = os.open(path, _APPEND_FLAGS, 0o600)
    try:
        write_all(fd, line.encode() + b"\n")
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if sync and created:
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (new or renamed files) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def delete_segment(path: Path) -> int:
    """Delete a segment and its ack log; the bytes freed."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        size = 0
    ack_path(path).unlink(missing_ok=True)
    return size
