"""Small helpers shared by the unit and integration tests."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.settings import Settings
from core.tenants import create_key, create_tenant, set_tenant_status
from gateway.ledger.ingest import Waker
from gateway.ledger.journal import Journal
from gateway.ledger.metrics import Backlog, LedgerMetrics

ENVELOPE_FIELDS = {"message", "type", "param", "code"}


class Clock:
    """A clock tests move by hand; call it for the current time."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_envelope(
    payload: Any, *, type: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """Check an OpenAI error envelope and return its `error` object."""
    assert isinstance(payload, dict) and set(payload) == {"error"}, payload
    error = payload["error"]
    assert set(error) == ENVELOPE_FIELDS, error
    assert isinstance(error["message"], str) and error["message"]
    assert (error["type"], error["code"], error["param"]) == (type, code, param), error
    return error


async def tenant_with_key(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    *,
    tier: str = "enterprise",
    models: list[str] | None = None,
    expires_in: timedelta | None = None,
    suspended: bool = False,
) -> str:
    """Create a tenant and one key for it; returns the key's plaintext."""
    async with sessions() as session:
        await create_tenant(session, name, tier)
        _, plaintext = await create_key(session, name, models or [], expires_in)
        if suspended:
            await set_tenant_status(session, name, "suspended")
    return plaintext


def ledger_journal(tmp_path: Path, **settings: Any) -> Journal:
    """An open spill journal in `tmp_path`, with the given settings."""
    values = {"data_dir": tmp_path, "_env_file": None, **settings}
    backlog = Backlog()
    metrics = LedgerMetrics(CollectorRegistry(), backlog, lambda: 0.0)
    journal = Journal(Settings(**values), "a" * 32, metrics, backlog, Waker(), lambda: 0.0)
    journal.open()
    return journal
