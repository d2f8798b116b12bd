"""Which models a call tries, in order: the route policy's target (a weighted split), then fallbacks.

The split is deterministic per request id, so a request replayed with the same `x-request-id` goes the same way
(reproducible in tests). Without a route policy the requested model is tried first, then its own `fallbacks:`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from policies import RoutePolicy


@dataclass(frozen=True, slots=True)
class Route:
    """The configured model names a call tries, first to last, and the route policy that chose them (if any)."""

    requested: str
    chain: tuple[str, ...]
    policy: RoutePolicy | None = None


def split_target(policy: RoutePolicy, request_id: str) -> str:
    """The target this request goes to: a weighted choice, the same for the same request id and policy."""
    total = sum(t.weight for t in policy.targets)
    digest = hashlib.blake2b(f"{policy.id or policy.name}\0{request_id}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") % total
    for target in policy.targets:
        if point < target.weight:
            return target.model
        point -= target.weight
    raise AssertionError("unreachable: the point lies below the total weight")


def plan_route(
    requested: str, policy: RoutePolicy | None, request_id: str, fallbacks_of: dict[str, tuple[str, ...]],
) -> Route:
    """The route of one call; names not configured on this gateway (`fallbacks_of` keys) are left out."""
    if policy is None:
        return Route(requested, _unique([requested, *fallbacks_of.get(requested, ())], fallbacks_of))
    target = split_target(policy, request_id)
    if target not in fallbacks_of:
        target = requested  # a policy naming a model this gateway does not serve must not cost the call
    chain = _unique([target, *policy.fallbacks, *fallbacks_of.get(target, ())], fallbacks_of)
    return Route(requested, chain, policy)


def _unique(names: list[str], configured: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for name in names:
        if name in configured:
            seen.setdefault(name, None)
    return tuple(seen)
