"""Crash recovery: replay the spill of writers whose process is gone, closing the calls they left unfinished.

For a dead instance the set "started but never finished" is computed over its remaining segments; each such
call gets a `gateway_crash` row appended (as a finish record) to its last segment, stamped with the latest
time found in its records, so a recovery interrupted and redone computes the same rows (the crash rows
already appended count as finishes). Then its segments are ingested like any other, honouring their ack logs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.callrow import crash_row, micros
from gateway.ledger.ingest import Ingestor
from gateway.ledger.instance import other_instances, remove_instance, sweep_staging, try_lock
from gateway.ledger.metrics import Backlog
from gateway.ledger.spill import (
    FINISH,
    START,
    ack_path,
    encode,
    read_acks,
    records,
    segment_numbers,
    segment_path,
    trim_torn_tail,
    write_all,
)

log = logging.getLogger("netra.ledger")
_STAMPS = ("received_at", "first_byte_at", "finished_at")


@dataclass
class Scan:
    """What a dead instance left: its unfinished calls, and what remains to send."""

    unfinished: dict[str, dict[str, Any]] = field(default_factory=dict)
    latest_us: int = 0
    rows: int = 0  # finish records past each segment's acknowledged offset
    bytes: int = 0  # segment bytes past each segment's acknowledged offset
    disk_bytes: int = 0
    crashed: int = 0


def _latest(row: dict[str, Any], current: int) -> int:
    for name in _STAMPS:
        value = micros(row.get(name))
        if value is not None and value > current:
            current = value
    return current


def scan_instance(directory: Path) -> Scan:
    """Starts minus finishes over a dead instance's segments, and what is left to send (blocking)."""
    scan = Scan()
    numbers = segment_numbers(directory)
    if numbers:
        trim_torn_tail(segment_path(directory, numbers[-1]))
    for number in numbers:
        path = segment_path(directory, number)
        acked = read_acks(ack_path(path)).acked
        for kind, row, end in records(path):
            scan.latest_us = _latest(row, scan.latest_us)
            request_id = str(row.get("request_id"))
            if kind == START:
                scan.unfinished[request_id] = row
                continue
            scan.unfinished.pop(request_id, None)
            scan.rows += end > acked
        size = path.stat().st_size
        scan.disk_bytes += size
        scan.bytes += max(0, size - acked)
    return scan


def close_unfinished(directory: Path) -> Scan:
    """Scan a dead instance and append, fsynced, a crash row for each call it left unfinished (blocking)."""
    scan = scan_instance(directory)
    if not scan.unfinished:
        return scan
    last = segment_path(directory, segment_numbers(directory)[-1])
    data = b"".join(encode(FINISH, crash_row(row, scan.latest_us)) for row in scan.unfinished.values())
    fd = os.open(last, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    scan.crashed = len(scan.unfinished)
    scan.rows += scan.crashed
    scan.bytes += len(data)
    scan.disk_bytes += len(data)
    return scan


async def recover_instances(
    spill_dir: Path, own: str, ingestor: Ingestor, backlog: Backlog, busy: Container[str] = ()
) -> None:
    """Replay every dead writer's directory, oldest first; one whose lock is held, or named in `busy`, is left alone.

    `busy` names directories someone else still works on (the ledger process's followers, until they stopped).
    """
    await ingestor.io_retry(sweep_staging, spill_dir)
    for directory in await ingestor.io_retry(other_instances, spill_dir, own):
        if directory.name in busy:
            continue
        fd = await ingestor.io_retry(try_lock, directory)
        if fd is None:
            continue
        try:
            await _recover(directory, ingestor, backlog)
        finally:
            os.close(fd)


def _never_live() -> bool:
    return False


def _ignore(offset: int) -> None:
    return None


async def _recover(directory: Path, ingestor: Ingestor, backlog: Backlog) -> None:
    # A failed append of crash rows is redone from a fresh scan, which counts those that made it.
    scan = await ingestor.io_retry(close_unfinished, directory)
    backlog.rows += scan.rows
    backlog.bytes += scan.bytes
    backlog.disk_bytes += scan.disk_bytes
    log.info(
        "replaying the spill of a stopped writer",
        extra={"instance": directory.name, "rows": scan.rows, "crashed_calls": scan.crashed},
    )
    for number in await ingestor.io_retry(segment_numbers, directory):
        await ingestor.ingest_segment(directory.name, segment_path(directory, number), _never_live, _ignore)
    await ingestor.io_retry(remove_instance, directory)
