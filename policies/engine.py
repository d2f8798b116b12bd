"""The pure decision: which active policy of each kind applies to a request. No I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from policies.features import Features
from policies.matching import KindIndex
from policies.models import AnyPolicy, BatchPolicy, CachePolicy, RoutePolicy

# The exact cache serves these endpoints only; `responses` may depend on server-side state (previous_response_id).
CACHEABLE_ENDPOINTS = frozenset({"chat/completions", "completions", "embeddings"})


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy of each kind that acts on a request (None: no policy of that kind matched)."""

    cache: CachePolicy | None = None
    route: RoutePolicy | None = None
    batch: BatchPolicy | None = None


NO_DECISION = Decision()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable set of active policies at one store version, indexed for ``decide``; build with ``build``."""

    version: int
    policies: tuple[AnyPolicy, ...]  # active only, best first: priority descending, then id
    cache: KindIndex[CachePolicy] = field(repr=False)
    route: KindIndex[RoutePolicy] = field(repr=False)
    batch: KindIndex[BatchPolicy] = field(repr=False)

    @classmethod
    def build(cls, version: int, policies: Iterable[AnyPolicy]) -> Snapshot:
        """The snapshot of the active policies among ``policies`` (others are left out)."""
        ordered = tuple(sorted(_latest_active(policies), key=_rank))
        return cls(
            version=version,
            policies=ordered,
            cache=KindIndex([p for p in ordered if isinstance(p, CachePolicy)]),
            route=KindIndex([p for p in ordered if isinstance(p, RoutePolicy)]),
            batch=KindIndex([p for p in ordered if isinstance(p, BatchPolicy)]),
        )

    @classmethod
    def empty(cls) -> Snapshot:
        """A snapshot with no policies (version 0), what a gateway serves with before the store answers."""
        return cls.build(0, ())


def _latest_active(policies: Iterable[AnyPolicy]) -> list[AnyPolicy]:
    """Active policies, one per id (its highest version, should the store ever hand over two)."""
    by_id: dict[str, AnyPolicy] = {}
    anonymous: list[AnyPolicy] = []
    for policy in policies:
        if policy.status != "active":
            continue
        if policy.id is None:
            anonymous.append(policy)
        elif policy.id not in by_id or by_id[policy.id].version < policy.version:
            by_id[policy.id] = policy
    return [*by_id.values(), *anonymous]


def _rank(policy: AnyPolicy) -> tuple[int, str, str, int]:
    # Ties in priority go to the smaller id, so every process decides alike whatever order the store returned.
    return (-policy.priority, policy.id or "", policy.name, policy.version)


def decide(features: Features, snapshot: Snapshot) -> Decision:
    """For each kind, the highest-priority active policy whose match holds for the request."""
    if not snapshot.policies:
        return NO_DECISION
    cache = snapshot.cache.first(features)
    route = snapshot.route.first(features)
    batch = snapshot.batch.first(features)
    if cache is None and route is None and batch is None:
        return NO_DECISION
    return Decision(cache=cache, route=route, batch=batch)


def cacheable(features: Features, policy: CachePolicy) -> bool:
    """Whether ``policy`` lets this request use the exact cache (the determinism rule, tools only if matched)."""
    if features.endpoint not in CACHEABLE_ENDPOINTS:
        return False
    if features.tools and policy.match.tools is not True:
        return False
    # An embedding is a function of its input: no sampling parameters make it vary.
    if policy.cache_nondeterministic or features.endpoint == "embeddings":
        return True
    deterministic = features.temperature == 0 or features.top_p == 0 or features.seed_given
    return deterministic and features.n == 1
