"""Where a non-streamed call goes: through the embeddings micro-batcher when a batch policy matches, else its own way.

The handler's direct path and the cache's miss path both send here, so a request the cache did not answer is
batched too. Every upstream call, shared or not, goes through the same dispatcher (retries, fallbacks, breakers).
"""

from __future__ import annotations

from gateway.cache_plan import features_of
from gateway.context import CallContext
from gateway.providers.base import UpstreamCall, UpstreamReply
from gateway.routing import Route
from gateway.state import GatewayState
from gateway.upstream import send, served_by
from policies import BatchPolicy, decide


def batch_policy(state: GatewayState, ctx: CallContext, call: UpstreamCall) -> BatchPolicy | None:
    """The batch policy acting on a non-streamed embeddings call, if one matches."""
    if call.endpoint != "embeddings" or call.stream:
        return None
    return decide(features_of(ctx, call), state.policies.snapshot).batch


async def send_reply(state: GatewayState, ctx: CallContext, call: UpstreamCall, route: Route) -> UpstreamReply:
    """The reply to a non-streamed call over its route, batched with company if a batch policy says so."""

    async def attempt(on: CallContext, sent: UpstreamCall) -> UpstreamReply:
        return await send(state, on, sent, route)

    policy = batch_policy(state, ctx, call)
    if policy is None:
        return await attempt(ctx, call)
    # Requests going the same way share a call: the route's models, in order, are its destination.
    reply = await state.batcher.send(ctx, call, policy, route.chain, attempt)
    reply.served = served_by(ctx)  # a request coalesced with this one names the same deployment
    return reply
