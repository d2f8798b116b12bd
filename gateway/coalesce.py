"""Single flight: identical cacheable requests in flight at the same time share one provider call.

`Coalescer` is a per-process registry keyed by the cache key (one object per app, built in the lifespan). The
first caller of a key leads: its provider call runs in a task of its own, so the leader's client leaving (the
middleware cancels the leader's task) does not strand the followers that arrived meanwhile; the call is
cancelled only when nobody waits for it any more. Followers wait for the leader and share its answer: the whole
reply for non-streamed calls, a subscription to the leader's `Flight` for streams (a follower arriving while that
stream is still running joins it live and replays it from the start).

When the leader's call fails, the leader gets its error; followers get the same error when it was the request's
own fault (a 4xx about the request: the same body would be refused again), otherwise they are released and each
makes its own call, uncoalesced. Entries leave the registry when the answer is out: at once for replies, when the
flight is done (or stops being joinable) for streams. Streamed and non-streamed calls never share an entry.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.errors import NetraError
from gateway.flight import Flight, Subscription
from gateway.providers.base import UpstreamReply

T = TypeVar("T")
Publisher = Callable[["Table", "_Entry", Any], Awaitable[None]]
Table = dict[str, "_Entry"]
# 4xx statuses that say nothing about the request body: another attempt may well succeed.
TRANSIENT_4XX = frozenset({408, 409, 425, 429})
_RELEASED = object()  # what a released follower's waiter resolves to: "make your own call"


@dataclass(frozen=True, slots=True)
class Shared(Generic[T]):
    """An answer, and the request id of the call that produced it (the caller's own when it was not coalesced)."""

    value: T
    leader_id: str
    coalesced: bool


def request_fault(error: BaseException) -> bool:
    """Whether a failure was the request's own fault, so that an identical request would fail the same way."""
    return isinstance(error, NetraError) and 400 <= error.status_code < 500 and error.status_code not in TRANSIENT_4XX


class _Entry:
    """One key's call in flight: who leads, who waits, and (for streams) the flight once it started."""

    __slots__ = ("flight", "key", "leader", "leader_id", "task", "waiters")

    def __init__(self, key: str, leader_id: str) -> None:
        self.key = key
        self.leader_id = leader_id
        self.leader: asyncio.Future[Any] | None = None
        self.waiters: list[asyncio.Future[Any]] = []
        self.task: asyncio.Task[None] | None = None
        self.flight: Flight | None = None


class Coalescer:
    """The per-process registry of cacheable calls in flight, keyed by cache key."""

    def __init__(self) -> None:
        self._replies: Table = {}
        self._streams: Table = {}

    def __len__(self) -> int:
        return len(self._replies) + len(self._streams)

    def waiting(self, key: str) -> int:
        """How many callers (leader included) wait for the call in flight for this key."""
        entries = (self._replies.get(key), self._streams.get(key))
        return sum(len(entry.waiters) for entry in entries if entry is not None)

    async def reply(
        self, key: str, request_id: str, call: Callable[[], Awaitable[UpstreamReply]]
    ) -> Shared[UpstreamReply]:
        """The reply of the call in flight for `key`, or of `call()`, made here when nobody is making it."""
        entry = self._replies.get(key)
        leading = entry is None
        if entry is None:
            entry = self._lead(self._replies, key, request_id, call, _publish_reply)
        value = await self._wait(self._replies, entry, leading)
        if value is _RELEASED:
            return Shared(await call(), request_id, coalesced=False)
        if leading:
            return Shared(value, request_id, coalesced=False)
        return Shared(_own_copy(value), entry.leader_id, coalesced=True)

    async def stream(self, key: str, request_id: str, start: Callable[[], Awaitable[Flight]]) -> Shared[Subscription]:
        """A subscription to the stream in flight for `key`, or to the flight `start()` opens when there is none.

        `start` opens the provider stream and wraps it in a Flight (with `keep_for_store` if a cache fill is due);
        it runs in the coalescer's task, so arrange the cache fill there (e.g. `flight.on_done`), not in the caller.
        """
        entry = self._streams.get(key)
        if entry is not None and entry.flight is not None:
            if entry.flight.joinable:
                return Shared(entry.flight.subscribe(), entry.leader_id, coalesced=True)
            _remove(self._streams, entry)  # it can no longer serve a newcomer from the start
            entry = None
        leading = entry is None
        if entry is None:
            entry = self._lead(self._streams, key, request_id, start, _publish_flight)
        value = await self._wait(self._streams, entry, leading)
        if value is _RELEASED:
            return Shared((await start()).subscribe(), request_id, coalesced=False)
        return Shared(value, request_id if leading else entry.leader_id, coalesced=not leading)

    def _lead(
        self, table: Table, key: str, request_id: str, call: Callable[[], Awaitable[Any]], publish: Publisher
    ) -> _Entry:
        entry = _Entry(key, request_id)
        table[key] = entry
        entry.task = asyncio.get_running_loop().create_task(_produce(table, entry, call, publish))
        return entry

    @staticmethod
    async def _wait(table: Table, entry: _Entry, leading: bool) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry.waiters.append(waiter)
        if leading:
            entry.leader = waiter
        try:
            return await waiter
        except asyncio.CancelledError:
            _leave(table, entry, waiter)
            raise


async def _produce(table: Table, entry: _Entry, call: Callable[[], Awaitable[Any]], publish: Publisher) -> None:
    """The leader's provider call, in a task of its own; its outcome goes to every waiter."""
    try:
        await publish(table, entry, await call())
    except asyncio.CancelledError:
        _remove(table, entry)  # every waiter left
        raise
    except Exception as exc:
        _remove(table, entry)
        _fail(entry, exc)


async def _publish_reply(table: Table, entry: _Entry, reply: UpstreamReply) -> None:
    _remove(table, entry)
    for waiter in entry.waiters:
        waiter.set_result(reply)
    entry.waiters.clear()


async def _publish_flight(table: Table, entry: _Entry, flight: Flight) -> None:
    """Subscribe every waiter before anyone can leave; keep the entry for live joiners while it runs."""
    for waiter in entry.waiters:
        waiter.set_result(flight.subscribe())
    entry.waiters.clear()
    if flight.joinable and not flight.done:
        entry.flight = flight
        flight.on_done(lambda _: _remove(table, entry))
    else:
        _remove(table, entry)
    if not flight.attached:
        await flight.aclose()  # everybody left while it was opening, and no cache fill wants it


def _fail(entry: _Entry, error: Exception) -> None:
    """The leader gets its error; followers get a copy of it when it was the request's fault, else are released."""
    shared = request_fault(error)
    for waiter in entry.waiters:
        if waiter.done():
            continue  # already answered (publishing failed part-way)
        if waiter is entry.leader:
            waiter.set_exception(error)
        elif shared:
            waiter.set_exception(_copy_error(error))
        else:
            waiter.set_result(_RELEASED)
    entry.waiters.clear()


def _leave(table: Table, entry: _Entry, waiter: asyncio.Future[Any]) -> None:
    """A waiter's caller was cancelled: let go of what it may have been handed; the last one out cancels the call."""
    if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
        value = waiter.result()
        if isinstance(value, Subscription):
            value.close()
    if waiter in entry.waiters:
        entry.waiters.remove(waiter)
    if not entry.waiters and entry.task is not None and not entry.task.done():
        _remove(table, entry)
        entry.task.cancel()


def _remove(table: Table, entry: _Entry) -> None:
    if table.get(entry.key) is entry:
        del table[entry.key]


def _own_copy(reply: UpstreamReply) -> UpstreamReply:
    """A follower's reply: the body bytes are shared (immutable), the mutable usage is its own."""
    usage = dataclasses.replace(reply.usage) if reply.usage is not None else None
    return dataclasses.replace(reply, usage=usage)


def _copy_error(error: Exception) -> Exception:
    """The same error for another task to raise, without sharing (and growing) the leader's traceback."""
    copy = type(error).__new__(type(error), *error.args)
    copy.__dict__.update(error.__dict__)
    return copy
