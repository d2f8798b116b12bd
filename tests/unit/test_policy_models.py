"""Policy models: durations, validation of each field, immutability and the store's JSON round-trip."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from policies.models import BatchPolicy, CachePolicy, RoutePolicy, parse_duration, parse_policy

CACHE = {"kind": "cache", "name": "c", "ttl": "1h"}
ROUTE = {"kind": "route", "name": "r", "targets": [{"model": "gpt-4o-mini", "weight": 90}, {"model": "gpt-4o"}]}
BATCH = {"kind": "batch", "name": "b", "match": {"endpoints": ["embeddings"]}, "defer": True}


@pytest.mark.parametrize(
    ("given", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("7d", 604800), (" 2h ", 7200), (45, 45), ("90m", 5400)],
)
def test_durations_become_seconds(given: Any, seconds: int) -> None:
    assert parse_duration(given) == seconds
    assert parse_policy({**CACHE, "ttl": given}).ttl_seconds == seconds  # type: ignore[union-attr]


@pytest.mark.parametrize("given", ["1x", "h", "1.5h", "-1h", "0s", 0, -5, True, None, 1.5, "1 hour", ""])
def test_bad_durations_are_refused(given: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(given)
    with pytest.raises(ValidationError):
        parse_policy({**CACHE, "ttl": given})


def test_defaults_of_a_minimal_policy() -> None:
    policy = parse_policy(CACHE)
    assert isinstance(policy, CachePolicy)
    assert (policy.id, policy.version, policy.status, policy.author) == (None, 1, "proposed", "human:unknown")
    assert (policy.priority, policy.rationale, policy.estimate, policy.created_at) == (0, "", None, None)
    assert policy.cache_nondeterministic is False
    assert policy.match.model_dump(exclude_none=True) == {}


def test_kind_selects_the_model() -> None:
    assert isinstance(parse_policy(CACHE), CachePolicy)
    route = parse_policy(ROUTE)
    assert isinstance(route, RoutePolicy)
    assert [(t.model, t.weight) for t in route.targets] == [("gpt-4o-mini", 90), ("gpt-4o", 1)]
    batch = parse_policy(BATCH)
    assert isinstance(batch, BatchPolicy)
    assert (batch.window_ms, batch.max_inputs, batch.defer) == (5, 512, True)


FULL_CACHE = {
    **CACHE,
    "id": "pol_1",
    "version": 3,
    "status": "active",
    "author": "agent:run-42",
    "rationale": "repeated prompts",
    "estimate": {"monthly_saving_usd": "1234.56", "traffic_share": 0.25},
    "priority": 7,
    "created_at": datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
    "match": {
        "tenants": ["acme"],
        "keys": ["key_1"],
        "models": ["gpt-4o-mini"],
        "endpoints": ["chat/completions", "completions"],
        "tags": ["batch", "nightly"],
        "stream": False,
        "tools": True,
        "prompt_tokens": {"min": 10, "max": 800},
        "temperature": {"max": 0.2},
    },
    "cache_nondeterministic": True,
}


@pytest.mark.parametrize("data", [FULL_CACHE, CACHE, ROUTE, {**ROUTE, "fallbacks": ["claude-sonnet"]}, BATCH])
def test_json_dump_round_trips(data: dict[str, Any]) -> None:
    policy = parse_policy(data)
    again = parse_policy(policy.model_dump(mode="json"))
    assert again == policy
    assert again.model_dump(mode="json") == policy.model_dump(mode="json")


def test_money_stays_decimal() -> None:
    policy = parse_policy(FULL_CACHE)
    assert policy.estimate is not None
    assert policy.estimate.monthly_saving_usd == Decimal("1234.56")
    assert policy.model_dump(mode="json")["estimate"]["monthly_saving_usd"] == "1234.56"


def test_policies_are_immutable() -> None:
    policy = parse_policy(FULL_CACHE)
    with pytest.raises(ValidationError):
        policy.priority = 99  # type: ignore[misc]
    assert policy.match.tenants == ("acme",)  # a tuple: no list to mutate behind the snapshot's back


INVALID = [
    pytest.param({**CACHE, "kind": "semantic"}, id="unknown-kind"),
    pytest.param({"name": "x", "ttl": "1h"}, id="no-kind"),
    pytest.param({"kind": "cache", "ttl": "1h"}, id="no-name"),
    pytest.param({"kind": "cache", "name": "x"}, id="cache-without-ttl"),
    pytest.param({**CACHE, "name": ""}, id="empty-name"),
    pytest.param({**CACHE, "color": "red"}, id="unknown-field"),
    pytest.param({**CACHE, "match": {"tenant": ["acme"]}}, id="unknown-match-field"),
    pytest.param({**CACHE, "match": {"tenants": []}}, id="empty-list"),
    pytest.param({**CACHE, "match": {"endpoints": ["chat"]}}, id="unknown-endpoint"),
    pytest.param({**CACHE, "match": {"stream": "yes"}}, id="stream-not-bool"),
    pytest.param({**CACHE, "match": {"prompt_tokens": {"min": 10, "max": 5}}}, id="inverted-range"),
    pytest.param({**CACHE, "match": {"prompt_tokens": {"max": 1.5}}}, id="fractional-tokens"),
    pytest.param({**CACHE, "match": {"temperature": {"max": "low"}}}, id="temperature-not-number"),
    pytest.param({**CACHE, "author": "bob"}, id="author-without-prefix"),
    pytest.param({**CACHE, "author": "robot:x"}, id="author-unknown-prefix"),
    pytest.param({**CACHE, "status": "enabled"}, id="unknown-status"),
    pytest.param({**CACHE, "version": 0}, id="version-zero"),
    pytest.param({**CACHE, "estimate": {"monthly_saving_usd": 5, "traffic_share": 1.5}}, id="share-above-one"),
    pytest.param({**ROUTE, "targets": []}, id="route-without-targets"),
    pytest.param({**ROUTE, "targets": [{"model": "x", "weight": 0}]}, id="zero-weight"),
    pytest.param({**BATCH, "max_inputs": 0}, id="batch-zero-inputs"),
    pytest.param({**BATCH, "ttl": "1h"}, id="field-of-another-kind"),
]


@pytest.mark.parametrize("data", INVALID)
def test_invalid_policies_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_policy(data)


@pytest.mark.parametrize("author", ["human:alice", "agent:run-2026-12-02T05:00", "human:jane.doe@acme.com"])
def test_author_forms(author: str) -> None:
    assert parse_policy({**CACHE, "author": author}).author == author
