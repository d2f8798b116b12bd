"""Provider credential overrides set by admins: a sealed key and/or a base URL per configured provider, the hosts
admins allowlisted past the SSRF check, and one change counter the gateways poll.

Only providers netra.yaml (or the environment) declares can be overridden; an override replaces the file's key or
base URL for that provider, and clearing it brings the file's back. Keys are stored sealed (core/credential_crypto.py)
with their last four characters beside them, the only part ever shown. Every change bumps the counter first, in
the same transaction, and writes its audit entry, which names the last four characters and never the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core import audit
from core.models import Base, UTCDateTime, utcnow

# Redis channel on which a change is announced; gateways also poll the counter, so a lost notice only delays.
CHANGES_CHANNEL = "netra:credentials"
MIN_KEY_CHARS = 8
MAX_KEY_CHARS = 4096
SHOWN_CHARS = 4


class CredentialError(ValueError):
    """A credential change that cannot be made, with a message for the admin."""


class ProviderCredential(Base):
    """One provider's overrides; a NULL field leaves the file's value in force."""

    __tablename__ = "provider_credentials"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    api_key_last4: Mapped[str | None] = mapped_column(String(SHOWN_CHARS), nullable=True)
    base_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320))

    def shown(self) -> dict[str, Any]:
        """What an audit entry or a listing may show of it (never the sealed key)."""
        return {"api_key_last4": self.api_key_last4, "base_url": self.base_url}


class AllowedHost(Base):
    """A host an admin allowlisted: base URLs on it skip the address checks."""

    __tablename__ = "credential_allowlist"

    host: Mapped[str] = mapped_column(String(253), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    added_by: Mapped[str] = mapped_column(String(320))

    def public(self) -> dict[str, Any]:
        """The entry as the API shows it."""
        return {"host": self.host, "added_at": self.added_at.isoformat(), "added_by": self.added_by}


class CredentialRevision(Base):
    """One row counting credential changes: gateways poll it to learn that their overrides are stale."""

    __tablename__ = "credential_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


@dataclass(frozen=True, slots=True)
class Overrides:
    """Everything a gateway needs to apply the overrides, read at one counter value."""

    version: int
    credentials: dict[str, ProviderCredential]
    allowlist: frozenset[str]


def check_api_key(key: str) -> str:
    """The key, if it can travel in an HTTP header (printable ASCII, no spaces); CredentialError otherwise."""
    key = key.strip()
    if not MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS:
        raise CredentialError(f"a key is {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters long")
    if not all(33 <= ord(ch) <= 126 for ch in key):
        raise CredentialError("a key is printable ASCII without spaces")
    return key


def last_four(key: str) -> str:
    """The part of a key that may be shown."""
    return key[-SHOWN_CHARS:]


async def credentials_version(session: AsyncSession) -> int:
    """The change counter: it grows with every change to any override or the allowlist."""
    value = await session.scalar(select(CredentialRevision.version).where(CredentialRevision.id == 1))
    return int(value or 0)


async def _bump(session: AsyncSession) -> None:
    # Written first: the row lock (PostgreSQL) or the write lock (SQLite) serialises concurrent changes.
    result = await session.execute(
        update(CredentialRevision).where(CredentialRevision.id == 1).values(version=CredentialRevision.version + 1)
    )
    if getattr(result, "rowcount", 1) == 0:
        session.add(CredentialRevision(id=1, version=1))
        await session.flush()


async def read_overrides(session: AsyncSession) -> Overrides:
    """The counter, every override and the allowlist (the counter first: a later change only reloads again)."""
    version = await credentials_version(session)
    rows = (await session.scalars(select(ProviderCredential))).all()
    hosts = (await session.scalars(select(AllowedHost.host))).all()
    return Overrides(version, {row.provider: row for row in rows}, frozenset(hosts))


async def override_of(session: AsyncSession, provider: str) -> ProviderCredential | None:
    """One provider's overrides, or None."""
    return await session.get(ProviderCredential, provider)


async def change_override(
    session: AsyncSession, provider: str, changes: dict[str, str | None], *, action: str, actor: str,
    address: str | None,
) -> ProviderCredential:
    """Set (or clear, with None) fields of a provider's override, bump the counter and audit it, in one commit."""
    await _bump(session)
    row = await session.get(ProviderCredential, provider)
    if row is None:
        row = ProviderCredential(provider=provider, updated_by=actor)
        session.add(row)
    before = row.shown()
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at, row.updated_by = utcnow(), actor
    audit.record(session, actor, action, ("provider", provider), before=before, after=row.shown(), address=address)
    await session.commit()
    return row


async def allowed_hosts(session: AsyncSession) -> list[AllowedHost]:
    """The allowlist, by host."""
    return list((await session.scalars(select(AllowedHost).order_by(AllowedHost.host))).all())


async def allow_host(session: AsyncSession, host: str, *, actor: str, address: str | None) -> AllowedHost:
    """Add a (normalised) host to the allowlist; adding one already there changes nothing."""
    existing = await session.get(AllowedHost, host)
    if existing is not None:
        return existing
    await _bump(session)
    entry = AllowedHost(host=host, added_at=utcnow(), added_by=actor)
    session.add(entry)
    audit.record(session, actor, "provider_allowlist.add", ("host", host), before=None, after=entry.public(),
                 address=address)
    await session.commit()
    return entry


async def disallow_host(session: AsyncSession, host: str, *, actor: str, address: str | None) -> bool:
    """Remove a host from the allowlist; False when it was not on it."""
    entry = await session.get(AllowedHost, host)
    if entry is None:
        return False
    await _bump(session)
    audit.record(session, actor, "provider_allowlist.remove", ("host", host), before=entry.public(), after=None,
                 address=address)
    await session.delete(entry)
    await session.commit()
    return True
