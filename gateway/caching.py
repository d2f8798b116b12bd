"""The exact response cache and single flight on the request path: hit, miss (coalesced or not), fill.

A request a cache policy allows is looked up (unless the client sent no-cache). A hit is answered from the entry,
as JSON or replayed as SSE. A miss calls the provider once for every identical request in flight (the Coalescer)
and stores the answer with the policy's TTL when it completed normally: a reply before it is shared (so a request
arriving once the call is over finds the entry), a stream by a fill task once its flight is done (the leader's
response ends only after the fill, so its client's next request finds the entry too). Redis trouble on the
lookup serves the request without the cache (`bypass`, though identical calls in flight are still shared); on a
store it is only counted.
"""

from __future__ import annotations

from gateway.cache import CachedEntry, CacheUnavailable, replay_json, replay_sse
from gateway.cache_miss import Miss
from gateway.cache_outcomes import bypassed, hit_headers, netra_headers, note_hit
from gateway.cache_plan import CachePlan, note_policy
from gateway.context import CallContext
from gateway.providers.base import UpstreamCall
from gateway.responses import BytesResponse, EventsResponse, ProxyResponse
from gateway.routing import Route
from gateway.state import GatewayState

__all__ = ["netra_headers", "serve_cached"]


async def serve_cached(
    state: GatewayState, ctx: CallContext, call: UpstreamCall, plan: CachePlan, route: Route
) -> ProxyResponse | None:
    """The answer through the cache, or None when the cache cannot be used now (serve it as a bypass)."""
    try:
        entry = await state.cache.get(plan.key) if plan.lookup else None
    except CacheUnavailable as exc:
        bypassed(state, exc)
        if not plan.coalesce:
            return None
        return await answer_miss(Miss(state, ctx, call, plan.without_cache(), route))
    note_policy(ctx, plan)
    if entry is not None:
        response = hit(ctx, call, plan, entry)
        if response is not None:
            return response
    ctx.cache_outcome = "miss"
    return await answer_miss(Miss(state, ctx, call, plan, route))


async def answer_miss(miss: Miss) -> ProxyResponse:
    """The provider's answer to a request the cache did not answer (`x-netra-cache` as noted on its context)."""
    return await (miss.stream() if miss.call.stream else miss.reply())


def hit(ctx: CallContext, call: UpstreamCall, plan: CachePlan, entry: CachedEntry) -> ProxyResponse | None:
    """The answer from a cached entry (None if it cannot be replayed in the form asked for: a miss then)."""
    response: ProxyResponse
    if call.stream:
        try:
            response = EventsResponse(replay_sse(entry, plan.include_usage), ctx, hit_headers(ctx, entry))
        except ValueError:
            return None
    else:
        response = BytesResponse(replay_json(entry), hit_headers(ctx, entry))
    note_hit(ctx, entry)
    return response
