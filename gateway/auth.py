"""Tenant authentication: bearer keys checked against their stored hash through a short-lived cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import AuthenticationFailed, ServiceUnavailable, TenantSuspended
from core.keys import hash_key, hashes_equal
from core.models import utcnow
from core.tenants import KeyRecord, find_key

log = logging.getLogger("netra.auth")
_NEGATIVE_TTL = 1.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and its tenant."""

    key_id: str
    tenant_id: str
    tenant_name: str
    tier: str
    allowed_models: frozenset[str]

    def may_use(self, model: str) -> bool:
        """Whether the key may call this model (no list means every configured model)."""
        return not self.allowed_models or model in self.allowed_models


def bearer_token(header: str | None) -> str:
    """The key from an Authorization header, or a 401 saying none was given."""
    if not header:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it in the Authorization header as 'Bearer nk-…'.",
            code="missing_api_key",
        )
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("The Authorization header must be 'Bearer <key>'.", code="invalid_api_key")
    return token


def principal_of(record: KeyRecord | None, presented_hash: str) -> Principal:
    """Check a looked-up key and turn it into a principal, or raise the matching error."""
    if record is None or not hashes_equal(record.key_hash, presented_hash):
        raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
    if record.revoked:
        raise AuthenticationFailed("This API key has been revoked.", code="invalid_api_key")
    if record.expires_at is not None and record.expires_at <= utcnow():
        raise AuthenticationFailed("This API key has expired.", code="invalid_api_key")
    if record.tenant_status != "active":
        raise TenantSuspended(f"The tenant {record.tenant_name!r} is suspended.")
    return Principal(record.key_id, record.tenant_id, record.tenant_name, record.tier, record.allowed_models)


class KeyAuthenticator:
    """Resolves keys to principals; the database is read at most once per key per TTL."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], ttl: float, max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._cache: dict[str, tuple[KeyRecord | None, float]] = {}
        # Valid keys' principals with the cache deadline and the key's own expiry (epoch seconds).
        self._valid: dict[str, tuple[Principal, float, float]] = {}
        self._pending: dict[str, asyncio.Future[KeyRecord | None]] = {}

    async def authenticate(self, header: str | None) -> Principal:
        """The principal behind an Authorization header."""
        presented = hash_key(bearer_token(header))
        valid = self._valid.get(presented)
        if valid is not None and valid[1] > self.clock() and valid[2] > time.time():
            return valid[0]
        cached = self._cache.get(presented)
        fresh = cached is not None and cached[1] > self.clock()
        record = cached[0] if fresh and cached is not None else await self._lookup(presented, cached)
        principal = principal_of(record, presented)
        self._remember_valid(presented, principal, record)
        return principal

    def _remember_valid(self, key_hash: str, principal: Principal, record: KeyRecord | None) -> None:
        entry = self._cache.get(key_hash)
        if entry is not None and record is not None:
            expiry = record.expires_at.timestamp() if record.expires_at is not None else float("inf")
            self._valid[key_hash] = (principal, entry[1], expiry)

    async def _lookup(self, key_hash: str, stale: tuple[KeyRecord | None, float] | None) -> KeyRecord | None:
        # Concurrent requests with the same uncached key share one database lookup. It runs in a task of its
        # own, so a caller that is cancelled (client gone) does not cancel it for the others.
        task = self._pending.get(key_hash)
        if task is None:
            task = asyncio.ensure_future(self._fetch(key_hash, stale))
            self._pending[key_hash] = task
            task.add_done_callback(lambda done: self._settled(key_hash, done))
        return await asyncio.shield(task)

    def _settled(self, key_hash: str, task: asyncio.Future[KeyRecord | None]) -> None:
        self._pending.pop(key_hash, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, so a lookup whose callers all left logs no warning

    async def _fetch(self, key_hash: str, stale: tuple[KeyRecord | None, float] | None) -> KeyRecord | None:
        try:
            async with self.sessions() as session:
                record = await find_key(session, key_hash)
        except (SQLAlchemyError, OSError) as exc:
            # Database down: keys we already know keep working; unknown ones cannot be checked.
            if stale is not None and stale[0] is not None:
                log.warning("key lookup failed, serving cached key", extra={"error": type(exc).__name__})
                return stale[0]
            raise ServiceUnavailable(
                "Netra cannot verify API keys right now; retry shortly.", code="auth_unavailable",
                headers={"retry-after": "2"},
            ) from exc
        self._remember(key_hash, record)
        return record

    def _remember(self, key_hash: str, record: KeyRecord | None) -> None:
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
            self._valid.clear()
        ttl = self.ttl if record is not None else min(self.ttl, _NEGATIVE_TTL)
        self._cache[key_hash] = (record, self.clock() + ttl)
