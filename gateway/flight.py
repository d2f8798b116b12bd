"""A stream with several consumers: one upstream stream read once, recorded, and relayed to every subscriber.

A `Flight` wraps one `UpstreamStream`. Its pump task (started by the first `subscribe()` or `hold()`) reads the
upstream events once and records them; every `Subscription` yields all events from the start (a late joiner
replays the record, then follows live) and ends when the upstream ends. Consumers come and go freely: one that
leaves (closed, or cancelled while waiting) never disturbs the pump or the others.

The provider call is closed (`stream.aclose()`) when its events end, or early when nothing is attached any more:
no subscription left and no store hold (`hold()`/`release()`, or `keep_for_store=True`, which keeps the flight
running to completion for a cache fill even when every client left). A flight that was never attached is closed
with `aclose()`; whoever creates a flight must subscribe, hold or close it.

Memory is bounded by `record_limit` bytes (default 8 MiB, far above any ordinary completion). Up to the limit
everything is recorded, for the cache fill and for late joiners. Past it, recording stops for good: the flight is
neither cacheable nor joinable, store holds no longer count, the chunks every subscriber has read are dropped, and
the pump stops reading upstream while the slowest subscriber is more than `record_limit` bytes behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import TracebackType

from core.usage import Usage
from gateway.providers.base import UpstreamStream

log = logging.getLogger("netra.gateway.flight")

DEFAULT_RECORD_BYTES = 8 * 1024 * 1024


class NotJoinable(Exception):
    """The flight cannot replay from its start any more (its record overflowed, or it was closed early)."""


class FlightClosed(Exception):
    """The flight was closed with `aclose()` while this subscription still read it: the stream is cut."""


class Flight:
    """One upstream stream, read once by a pump task and relayed from the start to any number of subscriptions."""

    def __init__(
        self, stream: UpstreamStream, *, keep_for_store: bool = False, record_limit: int = DEFAULT_RECORD_BYTES
    ) -> None:
        self.stream = stream
        # The deployment that answered (upstream model, provider, configured name), for the followers' rows.
        self.served: tuple[str, str, str] | None = None
        self.record_limit = record_limit
        self.recording = True  # False once the record passed record_limit
        self.completed = False  # the upstream events ended by themselves (not closed early, no exception)
        self.closed_early = False
        self.done = False  # the pump ended and the upstream call is closed
        self._closing = False  # the upstream call is being closed: nothing may interrupt that
        self.failure: Exception | None = None  # an unexpected error of the upstream iterator, re-raised to readers
        self._chunks: list[bytes] = []
        self._base = 0  # the absolute index of _chunks[0]: 0 while recording
        self._size = 0  # bytes held in _chunks
        self._subs: set[Subscription] = set()
        self._holds = 0
        self._wake = asyncio.Event()  # replaced on every change: readers wait on the current one
        self._room = asyncio.Event()  # replaced whenever readers free memory: the pump waits on it past the limit
        self._ended = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._callbacks: list[Callable[[Flight], None]] = []
        if keep_for_store:
            self.hold()

    @property
    def usage(self) -> Usage | None:
        """Tokens the provider reported (final once the flight is done)."""
        return self.stream.usage

    @property
    def completion_chars(self) -> int:
        """Characters of generated text the upstream stream relayed."""
        return self.stream.completion_chars

    @property
    def error_code(self) -> str:
        """The code of the failure that ended the upstream stream, or empty."""
        return self.stream.error_code

    @property
    def events(self) -> list[bytes]:
        """Every event recorded so far: the whole stream only while `recording` (a copy)."""
        return list(self._chunks) if self.recording else []

    @property
    def cacheable(self) -> bool:
        """Whether the flight ended normally with its whole record: the only state a cache may store."""
        return self.completed and self.recording and not self.error_code

    @property
    def joinable(self) -> bool:
        """Whether a newcomer can still get every event from the start."""
        return self.recording and not self.closed_early

    @property
    def attached(self) -> bool:
        """Whether anything keeps the upstream call open: a subscription, or a store hold while recording."""
        return bool(self._subs) or (self._holds > 0 and self.recording)

    @property
    def consumers(self) -> int:
        """How many subscriptions are open."""
        return len(self._subs)

    def subscribe(self) -> Subscription:
        """A new consumer, attached at once, that will read every event from the start."""
        if not self.joinable:
            raise NotJoinable("the flight no longer has its events from the start")
        sub = Subscription(self)
        self._subs.add(sub)
        self._start()
        return sub

    def hold(self) -> None:
        """Keep the upstream call running to its end whoever leaves (a cache fill is reading the record)."""
        self._holds += 1
        self._start()

    def release(self) -> None:
        """Drop one store hold; with nothing else attached the upstream call is closed."""
        self._holds = max(self._holds - 1, 0)
        self._settle()

    def on_done(self, callback: Callable[[Flight], None]) -> None:
        """Call `callback(flight)` once the flight is done (at once if it already is)."""
        if self.done:
            callback(self)
        else:
            self._callbacks.append(callback)

    async def wait(self) -> None:
        """Wait until the flight is done: pump ended, upstream call closed."""
        await self._ended.wait()

    async def aclose(self) -> None:
        """Close the upstream call now, whoever is attached (open subscriptions raise FlightClosed)."""
        if self._closing:
            await self._ended.wait()
            return
        self.closed_early = True
        if self._pump is None:
            await self._close_upstream(None)
            return
        self._pump.cancel()
        await self._ended.wait()

    async def read(self, sub: Subscription) -> bytes:
        """The events the subscription has not had yet, as soon as there are some; StopAsyncIteration at the end."""
        while sub.open:
            start = sub.pos - self._base
            if start < len(self._chunks):
                sub.pos = self._base + len(self._chunks)
                data = self._chunks[start] if start == len(self._chunks) - 1 else b"".join(self._chunks[start:])
                if not self.recording:
                    self._trim()
                return data
            if self.done:
                self._raise_end()
                break
            await self._wake.wait()
        raise StopAsyncIteration

    def detach(self, sub: Subscription) -> None:
        """Forget a subscription (Subscription.close calls this); the last one out closes the upstream call."""
        self._subs.discard(sub)
        if not self.recording:
            self._trim()
        self._settle()

    def _raise_end(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.closed_early:
            raise FlightClosed("the upstream call was closed before its stream ended")

    def _start(self) -> None:
        if self._pump is None and not self._closing:
            self._pump = asyncio.get_running_loop().create_task(self._run(), name="netra-flight")

    def _settle(self) -> None:
        if not self._closing and not self.attached and self._pump is not None:
            self.closed_early = True
            self._pump.cancel()

    async def _run(self) -> None:
        events = self.stream.events()
        try:
            async for data in events:
                self._append(data)
                if not self.attached:
                    self.closed_early = True  # the record overflowed with only a store hold left
                    return
                while self._size > self.record_limit and not self.recording:
                    await self._room.wait()
            self.completed = True
        except Exception as exc:
            self.failure = exc
            if not self._subs:
                log.exception("an upstream stream failed with nobody reading it")
        finally:
            await self._close_upstream(events)

    def _append(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        if self.recording and self._size > self.record_limit:
            self.recording = False  # from here on, keep only what some subscriber has not read yet
            self._trim()
        self._notify()

    def _trim(self) -> None:
        low = min((sub.pos for sub in self._subs), default=self._base + len(self._chunks))
        drop = low - self._base
        if drop <= 0:
            return
        self._size -= sum(len(chunk) for chunk in self._chunks[:drop])
        del self._chunks[:drop]
        self._base = low
        room, self._room = self._room, asyncio.Event()
        room.set()

    def _notify(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def _close_upstream(self, events: AsyncIterator[bytes] | None) -> None:
        self._closing = True
        try:
            if isinstance(events, AsyncGenerator):
                await events.aclose()  # a generator left at a yield (closed while the pump waited for room)
            await self.stream.aclose()
        finally:
            self._end()

    def _end(self) -> None:
        self.done = True
        self._ended.set()
        self._notify()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


class Subscription:
    """One consumer's view of a flight: every event from the start. Close it (or use `async with`) when done."""

    __slots__ = ("flight", "open", "pos")

    def __init__(self, flight: Flight) -> None:
        self.flight = flight
        self.open = True
        self.pos = 0  # the absolute index of the next chunk to read

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> bytes:
        return await self.flight.read(self)

    def close(self) -> None:
        """Leave the flight (idempotent); the upstream call goes on for the others."""
        if self.open:
            self.open = False
            self.flight.detach(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
