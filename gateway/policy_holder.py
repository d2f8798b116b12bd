"""Each gateway process's policy snapshot: immutable, swapped whole when the store's change counter moves.

Two paths bring a change in: a notice on the Redis channel (when Redis is configured) and a poll of the counter
row every ``policy_poll_interval`` seconds (the fallback, and the only path without Redis). Requests read
``holder.snapshot`` and nothing else: never the database. With the database down the last snapshot keeps serving.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.change_follower import ChangeFollower
from policies.engine import Snapshot
from policies.models import AnyPolicy
from policies.store import CHANGES_CHANNEL, active_policies, policies_version

log = logging.getLogger("netra.gateway.policies")
# A store that does not answer within this long counts as down (a hung connection must not stall reloads).
READ_TIMEOUT = 10.0
_STORE_TROUBLE = (SQLAlchemyError, OSError, TimeoutError)


class PolicyHolder:
    """The active policies as one immutable Snapshot, kept current by a poll and (with Redis) change notices."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], redis: Redis | None, poll_interval: float = 1.0
    ) -> None:
        self._sessions = sessions
        self._snapshot = Snapshot.empty()
        self._version = -1  # nothing loaded yet: the first read always builds
        self._lock = asyncio.Lock()
        self._store_down = False
        self._follower = ChangeFollower(self.refresh, redis, CHANGES_CHANNEL, poll_interval)

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot in force; one attribute read, swapped whole."""
        return self._snapshot

    @property
    def version(self) -> int:
        """The store's change counter the snapshot was built at (-1 before the first successful read)."""
        return self._version

    @property
    def subscribed(self) -> bool:
        """Whether change notices arrive from Redis right now (else only the poll brings changes)."""
        return self._follower.subscribed

    async def start(self) -> None:
        """Load the active policies (an unreachable store leaves none, for now) and start following changes."""
        await self.refresh()
        self._follower.start()

    async def close(self) -> None:
        """Stop following changes."""
        await self._follower.close()

    async def refresh(self) -> bool:
        """Rebuild the snapshot if the store changed since; False when the store could not be read."""
        async with self._lock:
            try:
                async with asyncio.timeout(READ_TIMEOUT):  # not wait_for: on 3.11 it can swallow a cancellation
                    read = await self._read()
            except _STORE_TROUBLE as exc:
                self._store_trouble(exc)
                return False
            self._store_answers()
            if read is not None:
                self._swap(*read)
            return True

    async def _read(self) -> tuple[int, list[AnyPolicy]] | None:
        # The counter first: a change committed between the two reads only makes the next poll reload again.
        async with self._sessions() as session:
            version = await policies_version(session)
            if version == self._version:
                return None
            return version, await active_policies(session)

    def _swap(self, version: int, policies: list[AnyPolicy]) -> None:
        try:
            snapshot = Snapshot.build(version, policies)
        except ValueError as exc:
            # Policies that cannot form a snapshot leave the last one serving; the next change retries.
            log.error("policy snapshot not built; keeping the last one", extra={"version": version, "error": str(exc)})
            self._version = version
            return
        self._snapshot, self._version = snapshot, version
        log.info("policy snapshot loaded", extra={"version": version, "active_policies": len(policies)})

    def _store_trouble(self, exc: BaseException) -> None:
        if not self._store_down:
            self._store_down = True
            log.warning(
                "policy store unreachable; the last policy snapshot keeps serving",
                extra={"version": self._version, "error": f"{type(exc).__name__}: {exc}"},
            )

    def _store_answers(self) -> None:
        if self._store_down:
            self._store_down = False
            log.info("policy store answers again")
