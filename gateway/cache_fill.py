"""Streams through the cache: a stored answer replayed as a flight, and the fill that stores a finished flight.

A stream's answer is stored by a fill task once its flight is done (never a cut stream, an error or finish_reason
length). Until the fill has stored it, the flight stays in `state.filling`, so an identical request arriving after
the stream ended but before its entry exists replays the flight instead of calling the provider again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from core.usage import Usage
from gateway.cache import entry_from_stream
from gateway.cache_outcomes import store
from gateway.cache_plan import CachePlan
from gateway.coalesce import Shared
from gateway.flight import Flight, Subscription
from gateway.providers.base import UpstreamCall
from gateway.state import GatewayState


class ReplayStream:
    """A stored answer's SSE events as an upstream stream, for a flight others may join."""

    def __init__(self, events: list[bytes], usage: Usage) -> None:
        self._events = events
        self._usage = usage

    @property
    def usage(self) -> Usage | None:
        """The tokens of the call that stored the answer."""
        return self._usage

    @property
    def completion_chars(self) -> int:
        """Nothing was generated."""
        return 0

    @property
    def error_code(self) -> str:
        """A stored answer never failed."""
        return ""

    async def events(self) -> AsyncIterator[bytes]:
        """The events, all at once."""
        for data in self._events:
            yield data

    async def aclose(self) -> None:
        """Nothing to release."""


def joined(state: GatewayState, plan: CachePlan) -> Shared[Subscription] | None:
    """A subscription to an identical stream that ended and is being stored (replayed from its record)."""
    found = state.filling.get(plan.stream_key)
    if found is None or not found[0].joinable:
        return None
    return Shared(found[0].subscribe(), found[1], coalesced=True)


def start_fill(
    state: GatewayState, request_id: str, call: UpstreamCall, plan: CachePlan, flight: Flight
) -> asyncio.Task[None]:
    """The task that stores the flight's answer once it is done (kept in state.fills until it ends)."""
    filling = fill(state, request_id, call, plan, flight)
    task = asyncio.get_running_loop().create_task(filling, name="netra-cache-fill")
    state.fills.add(task)
    state.filling[plan.stream_key] = (flight, request_id)

    def done(_: asyncio.Task[None]) -> None:
        state.fills.discard(task)
        if state.filling.get(plan.stream_key, (None,))[0] is flight:
            del state.filling[plan.stream_key]

    task.add_done_callback(done)
    return task


async def fill(state: GatewayState, request_id: str, call: UpstreamCall, plan: CachePlan, flight: Flight) -> None:
    """Store a stream's answer if it completed normally (never a cut stream, an error or finish_reason length)."""
    try:
        await flight.wait()
    finally:
        flight.release()
    if not flight.cacheable:
        return
    entry = entry_from_stream(
        flight.events, endpoint=call.endpoint, request_id=request_id, stored_at=time.time(), usage=flight.usage,
        model=call.model.upstream_name,
    )
    await store(state, plan, entry)
