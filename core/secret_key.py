"""Netra's master secret: NETRA_SECRET_KEY, else a random file in the data dir made on first use.

Every process on one data dir (the admin app, the gateway) reads the same secret, and derives from it one key per
purpose (token signing, credential encryption), so a key of one purpose never works for another.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from core.settings import Settings

SECRET_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)
SECRET_BYTES = 32
MIN_SECRET_CHARS = 32


class SecretProblem(RuntimeError):
    """The configured secret or the secret file cannot be used."""


def _create(path: Path) -> None:
    """Write a new random secret, readable by its owner alone, unless another process got there first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(SECRET_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    # link() refuses an existing name: two processes starting together end up sharing the first one's secret.
    with contextlib.suppress(FileExistsError):
        os.link(temp, path)
    temp.unlink()


def _from_file(path: Path) -> bytes:
    if not path.exists():
        _create(path)
    if path.stat().st_mode & 0o077:
        raise SecretProblem(f"{path} is readable by other users: `chmod 600 {path}`")
    secret = path.read_bytes()
    if len(secret) < SECRET_BYTES:
        raise SecretProblem(f"{path} holds fewer than {SECRET_BYTES} bytes: delete it to have a new one made")
    return secret


def load_secret(settings: Settings) -> bytes:
    """The master secret (blocking file I/O: call it off the event loop); never use it as a key directly."""
    if settings.secret_key is not None:
        configured = settings.secret_key.get_secret_value()
        if len(configured) < MIN_SECRET_CHARS:
            raise SecretProblem(f"NETRA_SECRET_KEY is too short: use at least {MIN_SECRET_CHARS} random characters")
        return configured.encode()
    return _from_file(settings.data_dir / SECRET_FILE)
