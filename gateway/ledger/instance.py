"""Instance directories under the spill dir: one per writer, owned through an flock on its `lock` file.

A writer holds its lock for its whole life; a directory whose lock can be taken belongs to a process that is
gone, and its segments are replayed by the next writer to start. Directories are created under a hidden
staging name and renamed into place with the lock already held, so no scanner ever sees a live one unlocked.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from core.file_lock import lock_file
from gateway.ledger.spill import fsync_dir, segment_numbers, segment_path

LOCK_NAME = "lock"
_INSTANCE = re.compile(r"[0-9a-f]{32}")
_STAGING = re.compile(r"\.[0-9a-f]{32}")


def create_instance(spill_dir: Path, instance: str) -> tuple[Path, int]:
    """Create and lock the writer's own directory; its path and the lock's descriptor."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    staging = spill_dir / f".{instance}"
    staging.mkdir()
    fd = try_lock(staging)
    if fd is None:
        raise OSError(f"cannot lock the new spill directory {staging}")
    final = spill_dir / instance
    try:
        staging.rename(final)
        fsync_dir(spill_dir)
    except OSError:
        os.close(fd)
        raise
    return final, fd


def try_lock(directory: Path) -> int | None:
    """The directory's lock, taken, when no live writer holds it; None when one does or the dir is gone."""
    try:
        return lock_file(directory / LOCK_NAME)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _age_key(directory: Path) -> tuple[float, str]:
    # Oldest data first: by the time its first remaining segment was written.
    try:
        numbers = segment_numbers(directory)
        stamp = segment_path(directory, numbers[0]).stat().st_mtime if numbers else 0.0
    except OSError:
        stamp = 0.0
    return stamp, directory.name


def other_instances(spill_dir: Path, own: str) -> list[Path]:
    """Other writers' directories, oldest data first (whether their writers live is for the lock to say)."""
    try:
        entries = [path for path in spill_dir.iterdir() if path.is_dir()]
    except FileNotFoundError:
        return []
    found = [path for path in entries if _INSTANCE.fullmatch(path.name) and path.name != own]
    return sorted(found, key=_age_key)


def sweep_staging(spill_dir: Path) -> None:
    """Remove staging directories left by a writer that died while creating its own."""
    try:
        staged = [path for path in spill_dir.iterdir() if _STAGING.fullmatch(path.name)]
    except FileNotFoundError:
        return
    for directory in staged:
        fd = try_lock(directory)
        if fd is not None:
            remove_instance(directory)
            os.close(fd)


def remove_instance(directory: Path) -> None:
    """Delete an instance directory, its lock last; tolerant of another remover racing it."""
    with contextlib.suppress(FileNotFoundError):
        for path in directory.iterdir():
            if path.name != LOCK_NAME:
                path.unlink(missing_ok=True)
    (directory / LOCK_NAME).unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        directory.rmdir()
