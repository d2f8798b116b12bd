"""The local ledger process's lock and socket: where they live, who may connect, and what travels over it.

One process per data directory owns the embedded store: whoever holds `<data_dir>/ledger.lock` (an flock).
The ledger process holds it while it runs and writes its pid into it; a reader that opens the store directly
holds it while it reads. The ledger process listens on `<data_dir>/ledger.sock` (mode 0600, in a data dir of
mode 0700) and answers only peers running as its own uid (SO_PEERCRED).

The wire format is newline-delimited JSON. Values that JSON cannot carry exactly are tagged: a Decimal is
`{"$decimal": "1.5"}`, a datetime `{"$datetime": iso}`, a date `{"$date": iso}`, a non-finite float
`{"$float": "nan"}`; `decode` turns them back, so a row read over the socket equals the row read directly.
"""

from __future__ import annotations

import math
import os
import socket
import struct
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from core.file_lock import lock_file

LOCK_NAME = "ledger.lock"
SOCKET_NAME = "ledger.sock"
MAX_LINE = 512 * 1024 * 1024  # a reply holds at most the row limit's rows; a line never exceeds this
_PATH_MAX = 100  # sun_path holds 108 bytes; longer paths are reached through the directory's descriptor
_TAGS = ("$decimal", "$datetime", "$date", "$float")


def lock_path(data_dir: Path) -> Path:
    """The lock whose holder owns the data dir's embedded store."""
    return data_dir / LOCK_NAME


def socket_path(data_dir: Path) -> Path:
    """The ledger process's socket."""
    return data_dir / SOCKET_NAME


def take_lock(data_dir: Path) -> int | None:
    """The ledger lock's descriptor, taken, or None when another process holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return lock_file(lock_path(data_dir))


def lock_holder(data_dir: Path) -> int | None:
    """The pid the ledger process wrote into the lock (for operators and tests), if any."""
    try:
        text = lock_path(data_dir).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class ShortPath:
    """An AF_UNIX address for `path` that fits sun_path: the path itself, or one through an open directory."""

    def __init__(self, path: Path) -> None:
        self._fd: int | None = None
        self.address = str(path)
        if len(os.fsencode(self.address)) > _PATH_MAX:
            self._fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self.address = f"/proc/self/fd/{self._fd}/{path.name}"

    def __enter__(self) -> str:
        return self.address

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def connect(path: Path, timeout: float) -> socket.socket:
    """A blocking connection to the ledger process's socket (OSError when none listens)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with ShortPath(path) as address:
            sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED), None if it cannot be read."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", raw)[1])


def peer_allowed(uid: int | None, own_uid: int) -> bool:
    """Only processes of the ledger process's own user may read the ledger."""
    return uid is not None and uid == own_uid


def _tag(value: Any) -> Any:
    # Only what orjson cannot serialise at all reaches here; types it would flatten are tagged by `encode`.
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot send a {type(value).__name__}")


def encode(value: Any) -> Any:
    """`value` with everything JSON cannot carry exactly tagged (tuples become lists)."""
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": str(value)}
    if isinstance(value, Decimal):
        return {"$decimal": format(value, "f")}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    return str(value) if isinstance(value, UUID) else value


def decode(value: Any) -> Any:
    """The value `encode` was given (lists stay lists)."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and (tag := next(iter(value))) in _TAGS:
            return _untag(tag, value[tag])
        return {key: decode(item) for key, item in value.items()}
    return value


def _untag(tag: str, text: str) -> Any:
    if tag == "$decimal":
        return Decimal(text)
    if tag == "$datetime":
        return datetime.fromisoformat(text)
    if tag == "$date":
        return date.fromisoformat(text)
    return float(text)


def dump_line(message: dict[str, Any]) -> bytes:
    """One message as a JSON line."""
    return orjson.dumps(encode(message), default=_tag, option=orjson.OPT_APPEND_NEWLINE)


def load_line(line: bytes) -> dict[str, Any]:
    """One JSON line as a message (ValueError when it is not a JSON object)."""
    message = orjson.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a ledger socket message is a JSON object")
    return dict(decode(message))
