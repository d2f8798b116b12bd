"""What the cache flow notes on a request and answers with: headers, outcomes on the context, stores, lookups."""

from __future__ import annotations

import time

from gateway.cache import CachedEntry, CacheUnavailable
from gateway.cache_plan import CachePlan, note_policy
from gateway.context import CallContext
from gateway.state import GatewayState

Headers = list[tuple[bytes, bytes]]


def netra_headers(ctx: CallContext, outcome: str) -> Headers:
    """`x-netra-model` (the model that served) and `x-netra-cache` of a proxied answer."""
    return [(b"x-netra-model", ctx.served_model.encode()), (b"x-netra-cache", outcome.encode())]


def bypassed(state: GatewayState, exc: CacheUnavailable) -> None:
    """Count a request (or a store) the cache could not serve."""
    state.metrics.child(state.metrics.cache_bypass, exc.reason).inc()


def hit_headers(ctx: CallContext, entry: CachedEntry) -> Headers:
    """The headers of an answer served from the cache: `age` too."""
    return [*netra_headers(ctx, "hit"), (b"age", str(entry.age(time.time())).encode())]


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


def reused(ctx: CallContext, plan: CachePlan, leader_id: str, served: tuple[str, str, str] | None) -> None:
    """Note that the answer is the leader's, shared while its call was in flight (the policy allowed it)."""
    note_policy(ctx, plan)
    ctx.cache_outcome, ctx.savings_kind, ctx.reused_request_id = "coalesced", "coalesce", leader_id
    ctx.upstream_called, ctx.upstream_attempts = False, 0
    if served is not None:  # the leader's call may have been routed or fallen back: name what answered
        ctx.served_model, ctx.provider, ctx.served_name = served


async def store(state: GatewayState, plan: CachePlan, entry: CachedEntry | None) -> None:
    """Keep the entry for the policy's TTL (a cache that cannot be written is counted, never an error)."""
    if entry is None:
        return
    try:
        await state.cache.put(plan.key, entry, plan.policy.ttl_seconds)
    except CacheUnavailable as exc:
        bypassed(state, exc)
