"""The exact response cache and single flight on the request path: hit, miss (coalesced or not), fill.

A request a cache policy allows is looked up (unless the client sent no-cache). A hit is answered from the entry,
as JSON or replayed as SSE. A miss calls the provider once for every identical request in flight (the Coalescer)
and stores the answer with the policy's TTL when it completed normally: a reply before it is shared (so a request
arriving once the call is over finds the entry), a stream by a fill task once its flight is done (the leader's
response ends only after the fill, so its client's next request finds the entry too). Redis trouble on the
lookup serves the request without the cache (`bypass`); on a store it is only counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from core.usage import Usage
from gateway.cache import CachedEntry, CacheUnavailable, entry_from_reply, entry_from_stream, replay_json, replay_sse
from gateway.cache_plan import CachePlan, note_policy
from gateway.coalesce import Shared
from gateway.context import CallContext
from gateway.flight import Flight, Subscription
from gateway.providers.base import Provider, UpstreamCall, UpstreamReply
from gateway.responses import BytesResponse, EventsResponse, FlightResponse, ProxyResponse
from gateway.state import GatewayState
from gateway.upstream import retrying

Headers = list[tuple[bytes, bytes]]


def netra_headers(call: UpstreamCall, outcome: str) -> Headers:
    """`x-netra-model` and `x-netra-cache` of a proxied answer."""
    return [(b"x-netra-model", call.model.upstream_name.encode()), (b"x-netra-cache", outcome.encode())]


def bypassed(state: GatewayState, exc: CacheUnavailable) -> None:
    """Count a request (or a store) the cache could not serve."""
    state.metrics.child(state.metrics.cache_bypass, exc.reason).inc()


async def serve_cached(
    state: GatewayState, ctx: CallContext, call: UpstreamCall, plan: CachePlan, provider: Provider
) -> ProxyResponse | None:
    """The answer through the cache, or None when the cache cannot be used now (serve it as a bypass)."""
    try:
        entry = await state.cache.get(plan.key) if plan.lookup else None
    except CacheUnavailable as exc:
        bypassed(state, exc)
        return None
    note_policy(ctx, plan)
    if entry is not None:
        response = hit(ctx, call, plan, entry)
        if response is not None:
            return response
    body = provider.encode(call)  # a body the provider cannot take is refused before any attempt is counted
    ctx.cache_outcome = "miss"
    if call.stream:
        return await miss_stream(state, ctx, call, plan, provider, body)
    return await miss_reply(state, ctx, call, plan, provider, body)


def hit(ctx: CallContext, call: UpstreamCall, plan: CachePlan, entry: CachedEntry) -> ProxyResponse | None:
    """The answer from a cached entry (None if it cannot be replayed in the form asked for: a miss then)."""
    response: ProxyResponse
    if call.stream:
        try:
            response = EventsResponse(replay_sse(entry, plan.include_usage), ctx, hit_headers(call, entry))
        except ValueError:
            return None
    else:
        response = BytesResponse(replay_json(entry), hit_headers(call, entry))
    note_hit(ctx, entry)
    return response


def hit_headers(call: UpstreamCall, entry: CachedEntry) -> Headers:
    """The headers of an answer served from the cache: `age` too."""
    return [*netra_headers(call, "hit"), (b"age", str(entry.age(time.time())).encode())]


def note_hit(ctx: CallContext, entry: CachedEntry) -> None:
    """Note that the answer is a stored one: nothing paid upstream, the tokens of the call that stored it."""
    ctx.cache_outcome, ctx.savings_kind, ctx.reused_request_id = "hit", "cache", entry.request_id
    ctx.usage = entry.usage()
    ctx.upstream_called, ctx.upstream_attempts = False, 0


async def second_look(state: GatewayState, plan: CachePlan) -> CachedEntry | None:
    """The entry, looked up again by a call about to go upstream.

    An identical call may have stored its answer and left the in-flight registry while this request's first lookup
    was on its way (Redis): without this look, both would call the provider.
    """
    if not plan.lookup:
        return None
    try:
        return await state.cache.get(plan.key)
    except CacheUnavailable:
        return None


def reused(ctx: CallContext, leader_id: str) -> None:
    """Note that the answer is the leader's, shared while its call was in flight."""
    ctx.cache_outcome, ctx.savings_kind, ctx.reused_request_id = "coalesced", "coalesce", leader_id
    ctx.upstream_called, ctx.upstream_attempts = False, 0


async def store(state: GatewayState, plan: CachePlan, entry: CachedEntry | None) -> None:
    """Keep the entry for the policy's TTL (a cache that cannot be written is counted, never an error)."""
    if entry is None:
        return
    try:
        await state.cache.put(plan.key, entry, plan.policy.ttl_seconds)
    except CacheUnavailable as exc:
        bypassed(state, exc)


async def miss_reply(
    state: GatewayState, ctx: CallContext, call: UpstreamCall, plan: CachePlan, provider: Provider, body: bytes
) -> BytesResponse:
    """A complete answer from the provider, shared with identical requests in flight and stored."""
    found: list[CachedEntry] = []

    async def call_upstream() -> UpstreamReply:
        entry = await second_look(state, plan)
        if entry is not None:
            found.append(entry)
            return UpstreamReply(replay_json(entry), entry.usage())
        reply = await retrying(state, ctx, provider, lambda: provider.send(call, body))
        if plan.store and reply.status == 200:
            entry = entry_from_reply(
                reply.body, endpoint=call.endpoint, request_id=ctx.request_id, stored_at=time.time(),
                usage=reply.usage, model=call.model.upstream_name,
            )
            await store(state, plan, entry)
        return reply

    if plan.coalesce:
        shared = await state.coalescer.reply(plan.key, ctx.request_id, call_upstream)
    else:
        shared = Shared(await call_upstream(), ctx.request_id, coalesced=False)
    if shared.coalesced:
        reused(ctx, shared.leader_id)
    elif found:
        note_hit(ctx, found[0])
        return BytesResponse(shared.value.body, hit_headers(call, found[0]))
    reply = shared.value
    ctx.usage, ctx.completion_chars = reply.usage, reply.completion_chars
    return BytesResponse(reply.body, netra_headers(call, ctx.cache_outcome), reply.status)


async def miss_stream(
    state: GatewayState, ctx: CallContext, call: UpstreamCall, plan: CachePlan, provider: Provider, body: bytes
) -> FlightResponse:
    """A streamed answer relayed from a shared flight (joined when an identical one is running), filling the cache."""
    fills: list[asyncio.Task[None]] = []
    found: list[CachedEntry] = []

    async def start() -> Flight:
        entry = await second_look(state, plan)
        if entry is not None:
            found.append(entry)
            return Flight(ReplayStream(replay_sse(entry, plan.include_usage), entry.usage()))
        stream = await retrying(state, ctx, provider, lambda: provider.open_stream(call, body))
        flight = Flight(stream, keep_for_store=plan.store)
        if plan.store:
            fills.append(start_fill(state, ctx.request_id, call, plan, flight))
        return flight

    shared: Shared[Subscription] | None = joined(state, plan) if plan.coalesce else None
    if shared is None and plan.coalesce:
        shared = await state.coalescer.stream(plan.stream_key, ctx.request_id, start)
    if shared is None:
        shared = Shared((await start()).subscribe(), ctx.request_id, coalesced=False)
    if shared.coalesced:
        reused(ctx, shared.leader_id)
    elif found:
        note_hit(ctx, found[0])
        return FlightResponse(shared.value, ctx, hit_headers(call, found[0]))
    fill = fills[0] if fills and not shared.coalesced else None
    return FlightResponse(shared.value, ctx, netra_headers(call, ctx.cache_outcome), fill)


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
