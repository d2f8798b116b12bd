"""Each gateway process's policy snapshot: immutable, swapped whole when the store's change counter moves.

Two paths bring a change in: a notice on the Redis channel (when Redis is configured) and a poll of the counter
row every ``policy_poll_interval`` seconds (the fallback, and the only path without Redis). Requests read
``holder.snapshot`` and nothing else: never the database. With the database down the last snapshot keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from policies.engine import Snapshot
from policies.models import AnyPolicy
from policies.store import CHANGES_CHANNEL, active_policies, policies_version

log = logging.getLogger("netra.gateway.policies")
# A store that does not answer within this long counts as down (a hung connection must not stall reloads).
READ_TIMEOUT = 10.0
# Pause before subscribing again after Redis failed, doubling while it stays down (the poll keeps changes coming).
RESUBSCRIBE_PAUSE = 1.0
MAX_RESUBSCRIBE_PAUSE = 30.0
_STORE_TROUBLE = (SQLAlchemyError, OSError, TimeoutError)
_REDIS_TROUBLE = (RedisError, OSError, TimeoutError)


class PolicyHolder:
    """The active policies as one immutable Snapshot, kept current by a poll and (with Redis) change notices."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], redis: Redis | None, poll_interval: float = 1.0
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._interval = poll_interval
        self._snapshot = Snapshot.empty()
        self._version = -1  # nothing loaded yet: the first read always builds
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._store_down = False
        self._redis_down = False
        self._subscribed = False

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
        return self._subscribed

    async def start(self) -> None:
        """Load the active policies (an unreachable store leaves none, for now) and start following changes."""
        await self.refresh()
        self._tasks.append(asyncio.create_task(self._poll(), name="netra-policy-poll"))
        if self._redis is not None:
            self._tasks.append(asyncio.create_task(self._listen(self._redis), name="netra-policy-notices"))

    async def close(self) -> None:
        """Stop following changes."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def refresh(self) -> bool:
        """Rebuild the snapshot if the store changed since; False when the store could not be read."""
        async with self._lock:
            try:
                read = await asyncio.wait_for(self._read(), READ_TIMEOUT)
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

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()

    async def _listen(self, redis: Redis) -> None:
        pause = RESUBSCRIBE_PAUSE
        while True:
            try:
                await self._follow_notices(redis)
            except _REDIS_TROUBLE as exc:
                pause = RESUBSCRIBE_PAUSE if self._subscribed else min(pause * 2, MAX_RESUBSCRIBE_PAUSE)
                self._subscribed = False
                if not self._redis_down:
                    self._redis_down = True
                    log.warning(
                        "policy change notices unavailable; polling the database",
                        extra={"interval_s": self._interval, "error": f"{type(exc).__name__}: {exc}"},
                    )
            await asyncio.sleep(pause)

    async def _follow_notices(self, redis: Redis) -> None:
        async with redis.pubsub() as pubsub:
            await asyncio.wait_for(pubsub.subscribe(CHANGES_CHANNEL), READ_TIMEOUT)
            self._subscribed = True
            if self._redis_down:
                self._redis_down = False
                log.info("policy change notices available again")
            await self.refresh()  # whatever was announced while not subscribed
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=RESUBSCRIBE_PAUSE)
                if message is not None:
                    await self.refresh()
