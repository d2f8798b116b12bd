"""Staged segments: the live segment written in shared memory (tmpfs), copied to its disk file by a syncer.

Why: a file the gateway maps is written back by every fsync, and writeback write-protects each page it
cleans. That costs the gateway's core a TLB-shootdown interrupt per page and a fault on its next append,
a hundred times a second at the 10 ms commit interval (measured: ~1 900 shootdowns/s, a third of the
ledger's cost). Pages of a tmpfs file are never written back, so the gateway's mapping is never touched;
the syncer (the ingest process, or the gateway's own commit thread while none runs) copies the new bytes
into the disk file with `pwrite` and fsyncs that.

The staged copy survives the gateway being killed (tmpfs outlives processes), so recovery copies what a
dead writer left in it before replaying its spill; only a power cut loses it, and by then at most one
commit interval is not yet on disk, as before. A copy writes the staged bytes at their own offsets, and
staged bytes never change once written, so two syncers copying the same segment (the gateway and a new
ingest process taking over) write the same bytes and cannot corrupt it.

A staged file exists from before its disk file appears until its last copy is fsynced: a segment whose
staged file exists is not complete on disk, and ingest must not delete it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from gateway.ledger.spill import data_end, fsync_dir, segment_numbers, segment_path

log = logging.getLogger("netra.ledger")
_CHUNK = 64 * 1024  # a commit interval's appends, many times over: one read per round


def stage_directory(stage_root: Path | None, instance: str) -> Path | None:
    """Where an instance stages its live segment, or None when staging is off."""
    return stage_root / instance if stage_root is not None else None


def make_stage(stage_root: Path | None, instance: str) -> Path | None:
    """Create an instance's private stage directory; None (the writer maps its disk files) when that fails."""
    stage = stage_directory(stage_root, instance)
    if stage is None:
        return None
    for _ in range(2):  # another writer may remove the shared root when it empties, just in between
        try:
            stage.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _check_private(stage.parent)
            stage.mkdir(mode=0o700)
            return stage
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("ledger segments not staged in memory (%s): the gateway maps the disk files", exc)
            return None
    return None


def _check_private(directory: Path) -> None:
    # The root's name is predictable: one made by another user could have our directory swapped under us.
    info = os.stat(directory)
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PermissionError(f"{directory} is not a private directory of this user")


def release_stage(stage: Path | None) -> None:
    """Remove a stopped writer's stage directory, and the shared root once no writer uses it.

    Both stay when not empty: a staged copy left after a failed final copy is what recovery copies to disk.
    """
    for directory in (stage, stage.parent) if stage is not None else ():
        try:
            directory.rmdir()
        except FileNotFoundError:
            continue  # already gone (recovery raced another remover): the root may still be empty
        except OSError:
            return


def staged(stage: Path | None, number: int) -> bool:
    """Whether segment `number` still has a staged copy (so its disk file may lack data)."""
    return stage is not None and segment_path(stage, number).exists()


def open_staged(stage: Path | None, number: int) -> int | None:
    """A read descriptor on the staged copy of a segment, or None when it has none (never staged, or done)."""
    if stage is None:
        return None
    try:
        return os.open(segment_path(stage, number), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def copy_staged(source: int, target: int, start: int) -> int:
    """Copy the staged bytes from `start` up to its first zero byte into the disk file; where the data ends."""
    end = start
    while chunk := os.pread(source, _CHUNK, end):
        zero = chunk.find(b"\0")
        data = chunk if zero < 0 else chunk[:zero]
        written = 0
        while written < len(data):
            written += os.pwrite(target, data[written:], end + written)
        end += len(data)
        if zero >= 0:
            break
    return end


def drop_staged(stage: Path, number: int) -> None:
    """Delete a staged copy whose data is all on disk and fsynced."""
    segment_path(stage, number).unlink(missing_ok=True)


def unstage(directory: Path, stage: Path | None) -> None:
    """Copy what a dead writer left staged into its disk files, fsync them, and delete the staged copies (blocking)."""
    if stage is None or not stage.is_dir():
        return
    for number in segment_numbers(stage):
        with contextlib.suppress(FileNotFoundError):
            _unstage_one(segment_path(directory, number), segment_path(stage, number))
        segment_path(stage, number).unlink(missing_ok=True)
    fsync_dir(directory)
    release_stage(stage)  # and the shared root, when this was the last writer in it


def _unstage_one(disk: Path, staged_path: Path) -> None:
    # No disk file: the writer died between creating the two, before anything was appended to either.
    target = os.open(disk, os.O_RDWR | os.O_CLOEXEC)
    try:
        source = os.open(staged_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            copy_staged(source, target, data_end(target, 0))
        finally:
            os.close(source)
        os.fsync(target)
    finally:
        os.close(target)
