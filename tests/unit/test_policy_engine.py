"""The decision engine: match semantics field by field, priority and tie-breaking, the index, the cache rule."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from policies.engine import Decision, Snapshot, cacheable, decide
from policies.features import Features
from policies.models import AnyPolicy, CachePolicy, parse_policy

REQUEST = Features(
    tenant="acme",
    key_id="key_1",
    model="gpt-4o-mini",
    endpoint="chat/completions",
    tags=frozenset({"nightly", "batch"}),
    prompt_tokens=500,
)
ACTIONS: dict[str, dict[str, Any]] = {
    "cache": {"ttl": "1h"},
    "route": {"targets": [{"model": "gpt-4o-mini"}]},
    "batch": {},
}


def policy(kind: str = "cache", pid: str = "p", priority: int = 0, status: str = "active", **match: Any) -> AnyPolicy:
    """An active policy of ``kind`` with this id, priority and match."""
    data = {"kind": kind, "id": pid, "name": pid, "priority": priority, "status": status, "match": match}
    return parse_policy({**data, **ACTIONS[kind]})


def chosen(features: Features, *policies: AnyPolicy, kind: str = "cache") -> str | None:
    """The id of the policy of ``kind`` that decide() picks, or None."""
    acted = getattr(decide(features, Snapshot.build(1, policies)), kind)
    return None if acted is None else acted.id


MATCHES = [
    ({}, {}, True),
    ({"tenants": ["acme"]}, {}, True),
    ({"tenants": ["globex"]}, {}, False),
    ({"tenants": ["globex", "acme"]}, {}, True),
    ({"keys": ["key_1"]}, {}, True),
    ({"keys": ["key_2"]}, {}, False),
    ({"models": ["gpt-4o-mini"]}, {}, True),
    ({"models": ["gpt-4o"]}, {}, False),
    ({"models": ["gpt-4o"]}, {"model": "gpt-4o"}, True),
    ({"endpoints": ["chat/completions"]}, {}, True),
    ({"endpoints": ["embeddings", "completions"]}, {}, False),
    ({"endpoints": ["embeddings"]}, {"endpoint": "embeddings"}, True),
    ({}, {"endpoint": "responses", "model": "never-named"}, True),
    ({}, {"endpoint": "moderations"}, True),  # an endpoint no policy names still meets the wildcard policies
    ({"endpoints": ["chat/completions"]}, {"endpoint": "moderations"}, False),
    ({"tags": ["nightly"]}, {}, True),
    ({"tags": ["nightly", "batch"]}, {}, True),
    ({"tags": ["nightly", "urgent"]}, {}, False),
    ({"tags": ["nightly"]}, {"tags": frozenset()}, False),
    ({"stream": True}, {}, False),
    ({"stream": True}, {"stream": True}, True),
    ({"stream": False}, {}, True),
    ({"tools": True}, {}, False),
    ({"tools": True}, {"tools": True}, True),
    ({"tools": False}, {"tools": True}, False),
    ({"prompt_tokens": {"min": 500}}, {}, True),
    ({"prompt_tokens": {"max": 500}}, {}, True),
    ({"prompt_tokens": {"min": 501}}, {}, False),
    ({"prompt_tokens": {"max": 499}}, {}, False),
    ({"prompt_tokens": {"min": 100, "max": 800}}, {}, True),
    ({"temperature": {"max": 0}}, {}, False),  # absent temperature is 1.0
    ({"temperature": {"max": 0}}, {"temperature": 0.0}, True),
    ({"temperature": {"min": 1, "max": 1}}, {}, True),
    ({"temperature": {"min": 1.01}}, {}, False),
    ({"temperature": {"min": 0.5, "max": 0.7}}, {"temperature": 0.7}, True),
    ({"temperature": {"max": 0.69}}, {"temperature": 0.7}, False),
    ({"tenants": ["acme"], "models": ["gpt-4o"]}, {}, False),  # every given field must hold
    ({"tenants": ["acme"], "models": ["gpt-4o-mini"], "tags": ["batch"], "prompt_tokens": {"max": 900}}, {}, True),
]


@pytest.mark.parametrize("kind", ["cache", "route", "batch"])
@pytest.mark.parametrize(("match", "changes", "expected"), MATCHES)
def test_match_fields(kind: str, match: dict[str, Any], changes: dict[str, Any], expected: bool) -> None:
    features = replace(REQUEST, **changes)
    assert chosen(features, policy(kind, "p", **match), kind=kind) == ("p" if expected else None)


@pytest.mark.parametrize("order", [1, -1])
def test_higher_priority_wins_whatever_the_store_order(order: int) -> None:
    policies = [policy(pid="low", priority=5), policy(pid="high", priority=10), policy(pid="neg", priority=-1)]
    assert chosen(REQUEST, *policies[::order]) == "high"


@pytest.mark.parametrize("order", [1, -1])
def test_equal_priority_goes_to_the_smaller_id(order: int) -> None:
    policies = [policy(pid="b", priority=3), policy(pid="a", priority=3), policy(pid="c", priority=3)]
    assert chosen(REQUEST, *policies[::order]) == "a"


def test_a_higher_priority_that_does_not_match_yields_to_one_that_does() -> None:
    assert chosen(REQUEST, policy(pid="other", priority=99, tenants=["globex"]), policy(pid="mine")) == "mine"


@pytest.mark.parametrize(("specific", "wildcard", "winner"), [(10, 1, "specific"), (1, 10, "wildcard")])
def test_model_specific_and_wildcard_policies_compete_on_priority(specific: int, wildcard: int, winner: str) -> None:
    policies = (policy(pid="specific", priority=specific, models=["gpt-4o-mini"]),
                policy(pid="wildcard", priority=wildcard))
    assert chosen(REQUEST, *policies) == winner
    assert chosen(replace(REQUEST, model="unnamed"), *policies) == "wildcard"
    assert chosen(replace(REQUEST, endpoint="moderations"), *policies) == winner  # neither names an endpoint


@pytest.mark.parametrize("status", ["proposed", "retired"])
def test_only_active_policies_act(status: str) -> None:
    snapshot = Snapshot.build(4, [policy(pid="x", priority=50, status=status), policy(pid="y")])
    assert [p.id for p in snapshot.policies] == ["y"]
    assert chosen(REQUEST, policy(pid="x", status=status)) is None


def test_each_kind_is_decided_on_its_own() -> None:
    snapshot = Snapshot.build(2, [policy("route", "r"), policy("batch", "b", tenants=["globex"]), policy("cache", "c")])
    decision = decide(REQUEST, snapshot)
    assert (decision.cache and decision.cache.id, decision.route and decision.route.id, decision.batch) == (
        "c", "r", None)


def test_the_highest_version_of_an_id_acts() -> None:
    v1, v2 = policy(pid="p", priority=1), policy(pid="p", priority=1, tenants=["globex"])
    v2 = v2.model_copy(update={"version": 2})
    snapshot = Snapshot.build(9, [v2, v1])
    assert [(p.id, p.version) for p in snapshot.policies] == [("p", 2)]
    assert decide(REQUEST, snapshot).cache is None


def test_no_policies_decide_nothing() -> None:
    assert decide(REQUEST, Snapshot.empty()) == Decision()
    assert Snapshot.empty().version == 0


def test_snapshot_orders_by_priority_then_id() -> None:
    policies = [policy(pid="b"), policy("route", "a"), policy(pid="z", priority=2), policy("batch", "m", priority=-3)]
    assert [p.id for p in Snapshot.build(1, policies).policies] == ["z", "a", "b", "m"]


def _reference(features: Features, policies: list[AnyPolicy], kind: str) -> str | None:
    """What decide() must answer, by brute force over every policy (no index)."""
    def holds(p: AnyPolicy) -> bool:
        m, t = p.match, 1.0 if features.temperature is None else features.temperature
        return all([
            m.tenants is None or features.tenant in m.tenants,
            m.models is None or features.model in m.models,
            m.endpoints is None or features.endpoint in m.endpoints,
            m.tags is None or set(m.tags) <= features.tags,
            m.stream is None or m.stream == features.stream,
            m.prompt_tokens is None or m.prompt_tokens.contains(features.prompt_tokens),
            m.temperature is None or m.temperature.contains(t),
        ])
    matching = [p for p in policies if p.kind == kind and p.status == "active" and holds(p)]
    best = min(matching, key=lambda p: (-p.priority, p.id or ""), default=None)
    return None if best is None else best.id


def _random_match(rng: random.Random) -> dict[str, Any]:
    pools: dict[str, Any] = {
        "tenants": lambda: rng.sample(["acme", "globex", "initech"], rng.randint(1, 2)),
        "models": lambda: rng.sample(["gpt-4o", "gpt-4o-mini", "o3", "text-embedding-3-small"], rng.randint(1, 2)),
        "endpoints": lambda: rng.sample(["chat/completions", "completions", "embeddings"], rng.randint(1, 2)),
        "tags": lambda: rng.sample(["a", "b", "c"], rng.randint(1, 2)),
        "stream": lambda: rng.random() < 0.5,
        "prompt_tokens": lambda: {"min": rng.choice([0, 100, 500]), "max": rng.choice([500, 1000])},
        "temperature": lambda: {"max": rng.choice([0, 0.5, 1])},
    }
    return {name: make() for name, make in pools.items() if rng.random() < 0.3}


def test_the_index_answers_what_brute_force_answers() -> None:
    rng = random.Random(20261202)
    policies = [
        policy(rng.choice(["cache", "route", "batch"]), f"p{i:03}", rng.randint(0, 5),
               rng.choice(["active", "active", "proposed"]), **_random_match(rng))
        for i in range(150)
    ]
    snapshot = Snapshot.build(1, policies)
    acted_count = 0
    for _ in range(400):
        features = Features(
            tenant=rng.choice(["acme", "globex", "initech", "umbrella"]), key_id="k",
            model=rng.choice(["gpt-4o", "gpt-4o-mini", "o3", "text-embedding-3-small", "unnamed"]),
            endpoint=rng.choice(["chat/completions", "completions", "embeddings", "responses"]),
            tags=frozenset(rng.sample(["a", "b", "c"], rng.randint(0, 3))), stream=rng.random() < 0.5,
            prompt_tokens=rng.choice([0, 100, 499, 500, 501, 2000]),
            temperature=rng.choice([None, 0.0, 0.5, 1.0]),
        )
        decision = decide(features, snapshot)
        for kind in ("cache", "route", "batch"):
            acted = getattr(decision, kind)
            assert (acted and acted.id) == _reference(features, policies, kind), (features, kind)
            acted_count += acted is not None
    assert acted_count > 200  # the comparison covers real matches, not only misses


def _cache(**fields: Any) -> CachePolicy:
    cache = parse_policy({"kind": "cache", "name": "c", "ttl": "1h", **fields})
    assert isinstance(cache, CachePolicy)
    return cache


CACHEABLE = [
    ({"temperature": 0.0}, {}, True),
    ({}, {}, False),  # temperature absent: 1.0
    ({"temperature": 0.7}, {}, False),
    ({"top_p": 0.0}, {}, True),
    ({"seed_given": True, "temperature": 0.9}, {}, True),
    ({"temperature": 0.0, "n": 2}, {}, False),
    ({"temperature": 0.7}, {"cache_nondeterministic": True}, True),
    ({"n": 3}, {"cache_nondeterministic": True}, True),
    ({"temperature": 0.0, "tools": True}, {}, False),
    ({"temperature": 0.0, "tools": True}, {"match": {"tools": True}}, True),
    ({"tools": True}, {"cache_nondeterministic": True}, False),
    ({"endpoint": "embeddings"}, {}, True),  # an embedding has no sampling
    ({"endpoint": "completions", "seed_given": True}, {}, True),
    ({"endpoint": "responses", "temperature": 0.0}, {}, False),
]


@pytest.mark.parametrize(("changes", "fields", "expected"), CACHEABLE)
def test_cacheable_follows_the_determinism_rule(
    changes: dict[str, Any], fields: dict[str, Any], expected: bool
) -> None:
    assert cacheable(replace(REQUEST, **changes), _cache(**fields)) is expected
