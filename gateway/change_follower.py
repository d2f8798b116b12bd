"""Following a change counter in the relational store: a poll every interval, and Redis notices when configured.

The holders (policies, credentials) give a `refresh` that reads the counter and
reloads when it moved; this runs it on a timer and whenever a notice arrives on the channel. A lost notice only
delays a change until the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("netra.gateway.changes")
READ_TIMEOUT = 10.0
# Pause before subscribing again after Redis failed, doubling while it stays down (the poll keeps changes coming).
RESUBSCRIBE_PAUSE = 1.0
MAX_RESUBSCRIBE_PAUSE = 30.0
_REDIS_TROUBLE = (RedisError, OSError, TimeoutError)


class ChangeFollower:
    """Runs `refresh` every `interval` seconds and on each notice published on `channel`."""

    def __init__(
        self, refresh: Callable[[], Awaitable[object]], redis: Redis | None, channel: str, interval: float,
    ) -> None:
        self._refresh = refresh
        self._redis = redis
        self._channel = channel
        self._interval = interval
        self._tasks: list[asyncio.Task[None]] = []
        self._redis_down = False
        self._closing = False  # the loops also stop on this, should a cancellation be swallowed on its way
        self.subscribed = False

    def start(self) -> None:
        """Start polling (and listening, with Redis)."""
        self._tasks.append(asyncio.create_task(self._poll(), name=f"netra-poll-{self._channel}"))
        if self._redis is not None:
            self._tasks.append(asyncio.create_task(self._listen(self._redis), name=f"netra-notices-{self._channel}"))

    async def close(self) -> None:
        """Stop following."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _poll(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._interval)
            await self._refresh()

    async def _listen(self, redis: Redis) -> None:
        pause = RESUBSCRIBE_PAUSE
        while not self._closing:
            try:
                await self._follow_notices(redis)
            except _REDIS_TROUBLE as exc:
                pause = RESUBSCRIBE_PAUSE if self.subscribed else min(pause * 2, MAX_RESUBSCRIBE_PAUSE)
                self.subscribed = False
                if not self._redis_down:
                    self._redis_down = True
                    log.warning("change notices unavailable; polling the database", extra={
                        "channel": self._channel, "interval_s": self._interval, "error": type(exc).__name__})
            await asyncio.sleep(pause)

    async def _follow_notices(self, redis: Redis) -> None:
        async with redis.pubsub() as pubsub:
            async with asyncio.timeout(READ_TIMEOUT):  # not wait_for: on 3.11 it can swallow a cancellation
                await pubsub.subscribe(self._channel)
            self.subscribed = True
            if self._redis_down:
                self._redis_down = False
                log.info("change notices available again", extra={"channel": self._channel})
            await self._refresh()  # whatever was announced while not subscribed
            while not self._closing:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=RESUBSCRIBE_PAUSE)
                if message is not None:
                    await self._refresh()
