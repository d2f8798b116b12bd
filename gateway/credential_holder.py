"""Admins' provider credential overrides, applied to this process's running provider adapters.

At start and whenever the store's credential counter moves (a poll every ``policy_poll_interval`` seconds, and a
Redis notice when configured), each adapter is given its effective config: the file's, with the override's key
and base URL. An adapter swaps its headers and URL whole, so requests in flight finish on the old ones and routing's
Deployments keep the same adapter objects. An override applies whole or not at all: one whose key does not open
(another NETRA_SECRET_KEY) or whose IP-literal base URL is refused leaves the file's config in force, logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import ProviderConfig
from core.credential_crypto import CredentialUnreadable, credential_key, unseal
from core.credentials import CHANGES_CHANNEL, Overrides, ProviderCredential, read_overrides
from core.secret_key import SecretProblem
from core.ssrf import UnsafeURL, literal_refusal, split_base_url
from gateway.change_follower import READ_TIMEOUT, ChangeFollower
from gateway.providers.base import Provider
from gateway.providers.guard import GuardedResolver

log = logging.getLogger("netra.gateway.credentials")
_STORE_TROUBLE = (SQLAlchemyError, OSError, TimeoutError)


class Skipped(Exception):
    """An override left unapplied, with why (never a secret)."""


class CredentialHolder:
    """Keeps the adapters' credentials and base URLs in line with the admins' overrides."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], providers: dict[str, Provider], guard: GuardedResolver,
        http: aiohttp.ClientSession, secret: Callable[[], bytes],
    ) -> None:
        self._sessions = sessions
        self._providers = providers
        self._files = {name: provider.config for name, provider in providers.items()}
        self._guard = guard
        self._http = http
        self._secret = secret
        self._key: bytes | None = None
        self._version = -1
        self._lock = asyncio.Lock()
        self._reported: set[tuple[str, str]] = set()
        self._store_down = False

    @property
    def version(self) -> int:
        """The counter the adapters' configs were built at (-1 before the first successful read)."""
        return self._version

    async def refresh(self) -> bool:
        """Apply the overrides if the store changed since; False when the store could not be read."""
        async with self._lock:
            try:
                async with asyncio.timeout(READ_TIMEOUT):  # not wait_for: on 3.11 it can swallow a cancellation
                    overrides = await self._read()
            except _STORE_TROUBLE as exc:
                if not self._store_down:
                    self._store_down = True
                    log.warning("credential store unreachable; the credentials in use stay",
                                extra={"error": type(exc).__name__})
                return False
            self._store_down = False
            if overrides is not None:
                await self._apply(overrides)
            return True

    async def _read(self) -> Overrides | None:
        async with self._sessions() as session:
            overrides = await read_overrides(session)
        return None if overrides.version == self._version else overrides

    async def _apply(self, overrides: Overrides) -> None:
        self._guard.allow(overrides.allowlist)
        connector = self._http.connector
        if isinstance(connector, aiohttp.TCPConnector):
            connector.clear_dns_cache()  # cached answers were checked against the allowlist as it was
        for name, provider in self._providers.items():
            target = await self._target(name, overrides)
            if target != provider.config:
                provider.reconfigure(target)
                log.info("provider credentials applied", extra={
                    "provider": name, "base_url": target.resolved_base_url, "version": overrides.version})
        self._version = overrides.version

    async def _target(self, name: str, overrides: Overrides) -> ProviderConfig:
        """The provider's effective config: the file's, with the override when it can be applied."""
        file, row = self._files[name], overrides.credentials.get(name)
        if row is None or (row.api_key_sealed is None and row.base_url is None):
            return file
        try:
            update = await self._update(name, row, overrides.allowlist)
        except Skipped as exc:
            self._report_once(name, str(exc), row)
            return file
        return file.model_copy(update=update)

    async def _update(self, name: str, row: ProviderCredential, allowlist: frozenset[str]) -> dict[str, object]:
        update: dict[str, object] = {}
        if row.api_key_sealed is not None:
            update["api_key"] = SecretStr(await self._unseal(name, row.api_key_sealed))
        if row.base_url is not None:
            try:
                url, host, _ = split_base_url(row.base_url)
            except UnsafeURL as exc:
                raise Skipped(f"its base URL is unusable: {exc}") from None
            if (why := literal_refusal(host, allowlist)) is not None:
                raise Skipped(f"its base URL is refused: {why}")
            update["base_url"] = url
        return update

    async def _unseal(self, name: str, sealed: str) -> str:
        try:
            if self._key is None:
                self._key = credential_key(await asyncio.to_thread(self._secret))
            return unseal(self._key, name, sealed)
        except (CredentialUnreadable, SecretProblem) as exc:
            raise Skipped(f"its key does not open ({exc})") from None

    def _report_once(self, name: str, why: str, row: ProviderCredential) -> None:
        """One error per provider and reason while the override stays the same (no key material in it)."""
        seen = (name, f"{why}|{row.updated_at.isoformat()}")
        if seen not in self._reported:
            self._reported.add(seen)
            log.error("provider credential override not applied; the file's credential stays in force",
                      extra={"provider": name, "reason": why, "api_key_last4": row.api_key_last4})


async def follow_credentials(holder: CredentialHolder, redis: Redis | None, interval: float) -> ChangeFollower:
    """Apply the overrides now, then keep following changes (started; close it at shutdown)."""
    await holder.refresh()
    follower = ChangeFollower(holder.refresh, redis, CHANGES_CHANNEL, interval)
    follower.start()
    return follower
