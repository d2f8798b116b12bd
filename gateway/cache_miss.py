"""A cacheable request on its way to the provider: one call per identical request in flight, its answer stored.

Identical requests share the call through the Coalescer (replies whole, streams as a Flight). A reply is stored
before it is shared, so a request arriving once the call is over finds the entry. A call about to go upstream looks
the entry up once more: an identical call may have stored its answer and left the in-flight registry while this
request's first lookup was on its way (Redis); it is then answered from the cache.
"""

from __future__ import annotations

import asyncio
import time

from gateway.cache import CachedEntry, entry_from_reply, replay_json, replay_sse
from gateway.cache_fill import ReplayStream, joined, start_fill
from gateway.cache_outcomes import hit_headers, netra_headers, note_hit, reused, second_look, store
from gateway.cache_plan import CachePlan
from gateway.coalesce import Shared
from gateway.context import CallContext
from gateway.embed_send import send_reply
from gateway.flight import Flight, Subscription
from gateway.providers.base import UpstreamCall, UpstreamReply
from gateway.responses import BytesResponse, FlightResponse
from gateway.routing import Route
from gateway.state import GatewayState
from gateway.upstream import open_stream, served_by


class Miss:
    """One request the cache did not answer; `reply()` or `stream()` makes (or shares) its provider call."""

    def __init__(
        self, state: GatewayState, ctx: CallContext, call: UpstreamCall, plan: CachePlan, route: Route
    ) -> None:
        self.state, self.ctx, self.call, self.plan, self.route = state, ctx, call, plan, route
        self.found: CachedEntry | None = None  # the entry the second look found
        self.fill: asyncio.Task[None] | None = None  # this request's stream fill, when it made the call

    async def send(self) -> UpstreamReply:
        """The provider's reply (or the stored answer, on a second look), stored before it is shared."""
        self.found = await second_look(self.state, self.plan)
        if self.found is not None:
            return UpstreamReply(replay_json(self.found), self.found.usage())
        call, ctx = self.call, self.ctx
        reply = await send_reply(self.state, ctx, call, self.route)  # embeddings may be micro-batched
        if self.plan.store and reply.status == 200:
            entry = entry_from_reply(
                reply.body, endpoint=call.endpoint, request_id=ctx.request_id, stored_at=time.time(),
                usage=reply.usage, model=ctx.served_model,
            )
            await store(self.state, self.plan, entry)
        return reply

    async def reply(self) -> BytesResponse:
        """A complete answer, shared with identical requests in flight."""
        ctx, plan = self.ctx, self.plan
        if plan.coalesce:
            shared = await self.state.coalescer.reply(plan.key, ctx.request_id, self.send)
        else:
            shared = Shared(await self.send(), ctx.request_id, coalesced=False)
        reply = shared.value
        if shared.coalesced:
            reused(ctx, plan, shared.leader_id, reply.served)
        elif self.found is not None:
            note_hit(ctx, self.found)
            return BytesResponse(reply.body, hit_headers(ctx, self.found))
        ctx.usage, ctx.completion_chars = reply.usage, reply.completion_chars
        return BytesResponse(reply.body, netra_headers(ctx, ctx.cache_outcome), reply.status)

    async def open(self) -> Flight:
        """The flight of this request's own stream (a store hold and fill when it is to be stored)."""
        self.found = await second_look(self.state, self.plan)
        if self.found is not None:
            return Flight(ReplayStream(replay_sse(self.found, self.plan.include_usage), self.found.usage()))
        call = self.call
        stream = await open_stream(self.state, self.ctx, call, self.route)
        flight = Flight(stream, keep_for_store=self.plan.store)
        flight.served = served_by(self.ctx)
        if self.plan.store:
            self.fill = start_fill(self.state, self.ctx.request_id, call, self.plan, flight)
        return flight

    async def stream(self) -> FlightResponse:
        """A streamed answer relayed from a flight, joined when an identical one is running or being stored."""
        ctx, plan = self.ctx, self.plan
        shared: Shared[Subscription] | None = joined(self.state, plan) if plan.coalesce else None
        if shared is None and plan.coalesce:
            shared = await self.state.coalescer.stream(plan.stream_key, ctx.request_id, self.open)
        if shared is None:
            shared = Shared((await self.open()).subscribe(), ctx.request_id, coalesced=False)
        if shared.coalesced:
            reused(ctx, plan, shared.leader_id, shared.value.flight.served)
            return FlightResponse(shared.value, ctx, netra_headers(ctx, "coalesced"))
        if self.found is not None:
            note_hit(ctx, self.found)
            return FlightResponse(shared.value, ctx, hit_headers(ctx, self.found))
        return FlightResponse(shared.value, ctx, netra_headers(ctx, ctx.cache_outcome), self.fill)
