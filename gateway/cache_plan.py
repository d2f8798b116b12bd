"""The cache decision for one request: which cache policy acts (if any), under which key, as the client allows.

Client control, by the request header `x-netra-cache` (comma-separated, as Cache-Control):
- `no-cache`: the answer is not looked up (nor taken from an identical call in flight), the fresh one is stored;
- `no-store`: the answer is not stored; it may still be served from the cache (HTTP's no-store forbids storing
  only), and the call is not shared with identical ones in flight.
Both together: the cache is not used at all, though the policy is still named on the ledger row.
While the cache cannot be used (Redis down) a request is served as `bypass`, but identical requests in flight in
this process still share one provider call (they are `coalesced`): an outage must not multiply provider calls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from starlette.datastructures import Headers

from core.usage import estimate_tokens
from gateway.cache import key_from_hash
from gateway.context import CallContext
from gateway.providers.base import UpstreamCall
from policies import CachePolicy, Features, cacheable

DIRECTIVE_HEADER = "x-netra-cache"


@dataclass(frozen=True, slots=True)
class CachePlan:
    """What the cache does for one request the policy allows (the key never leaves the gateway)."""

    policy: CachePolicy
    key: str
    lookup: bool  # False: the client sent no-cache
    store: bool  # False: the client sent no-store
    include_usage: bool  # a streamed answer carries a usage chunk
    coalesce: bool  # the call may be shared with identical ones in flight (not when the client steers the cache)

    def without_cache(self) -> CachePlan:
        """The plan while the cache cannot be used (Redis down): no lookup, no store; calls in flight still shared."""
        return replace(self, lookup=False, store=False)

    @property
    def stream_key(self) -> str:
        """The in-flight key of a stream: recorded events differ with and without the usage chunk."""
        return self.key + (":usage" if self.include_usage else ":plain")


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def features_of(ctx: CallContext, call: UpstreamCall) -> Features:
    """The facts policies match on, from what the gateway already learnt about the request."""
    body = call.body
    n = body.get("n")
    return Features(
        tenant=ctx.tenant_name, key_id=ctx.key_id, model=ctx.requested_model, endpoint=call.endpoint,
        tags=frozenset(ctx.tags), stream=call.stream, tools=bool(body.get("tools") or body.get("functions")),
        prompt_tokens=estimate_tokens(ctx.prompt_chars), temperature=_number(body.get("temperature")),
        top_p=_number(body.get("top_p")), seed_given=type(body.get("seed")) is int,
        n=n if type(n) is int else 1,
    )


def directives(headers: Headers) -> frozenset[str]:
    """The client's cache directives (lower-cased; unknown ones are ignored by the caller)."""
    value = headers.get(DIRECTIVE_HEADER)
    if not value:
        return frozenset()
    return frozenset(part.strip().lower() for part in value.split(","))


def plan_for(
    policy: CachePolicy | None, features: Features, ctx: CallContext, call: UpstreamCall, headers: Headers
) -> CachePlan | None:
    """The cache plan when the matching cache policy (if any) allows this request, else None (bypass)."""
    if policy is None or not cacheable(features, policy):
        return None
    wanted = directives(headers)
    key = key_from_hash(ctx.tenant_id, ctx.request_hash)  # the canonical hash, computed once per request
    lookup, store = "no-cache" not in wanted, "no-store" not in wanted
    return CachePlan(policy, key, lookup, store, call.include_usage, coalesce=lookup and store)


def note_policy(ctx: CallContext, plan: CachePlan) -> None:
    """Name the policy that acted on the ledger row."""
    ctx.policy_id = plan.policy.id or ""
    ctx.policy_version = plan.policy.version
