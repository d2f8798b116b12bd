"""The pure parts of routing: the breaker's states, the retry budget's arithmetic, route plans and the split."""

from __future__ import annotations

from collections import Counter

import pytest

from core.errors import InvalidParameter, ServiceUnavailable, UpstreamFailed, UpstreamRejected, UpstreamTimeout
from gateway.providers.failures import Failure, classify
from gateway.routing import Breaker, BreakerState, RetryBudget, plan_route, split_target
from policies import RoutePolicy
from policies.models import parse_policy
from tests.unit.helpers import Clock


def route_policy(targets: list[dict[str, object]], fallbacks: tuple[str, ...] = ()) -> RoutePolicy:
    policy = parse_policy({"kind": "route", "name": "r", "id": "pol-1", "targets": targets, "fallbacks": fallbacks})
    assert isinstance(policy, RoutePolicy)
    return policy


def test_the_breaker_opens_after_consecutive_failures_and_probes_once() -> None:
    clock, changes = Clock(), []
    breaker = Breaker(3, 30.0, clock, changes.append)
    for _ in range(2):
        breaker.failure()
    breaker.success()  # a success resets the count: failures must be consecutive
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert (breaker.state, breaker.allow(), breaker.retry_in()) == (BreakerState.OPEN, False, 30.0)
    clock.advance(30.0)
    assert breaker.allow() and not breaker.allow()  # one probe, the others wait for its verdict
    breaker.failure()  # the probe failed: open again for the whole open time
    assert (breaker.state, breaker.retry_in()) == (BreakerState.OPEN, 30.0)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN, BreakerState.HALF_OPEN,
                       BreakerState.CLOSED]


def test_a_probe_that_ends_without_a_verdict_frees_its_slot() -> None:
    clock = Clock()
    breaker = Breaker(1, 5.0, clock)
    breaker.failure()
    clock.advance(5.0)
    assert breaker.allow() and not breaker.available()
    breaker.release()
    assert breaker.available() and breaker.allow()


def test_the_budget_allows_its_floor_plus_a_share_of_requests() -> None:
    clock = Clock()
    budget = RetryBudget(0.2, floor=3, clock=clock)
    for _ in range(50):
        budget.request()
    taken = sum(budget.try_retry() for _ in range(100))
    assert taken == 3 + 10
    clock.advance(11)  # the window moved on: old requests and retries no longer count
    assert sum(budget.try_retry() for _ in range(100)) == 3


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (UpstreamRejected(400, "bad", etype=None, code=None, param=None), Failure("rejected")),
        (UpstreamFailed("x", code="upstream_auth_error"), Failure("auth")),
        (UpstreamFailed("x", code="upstream_error"), Failure("server")),
        (UpstreamTimeout("x"), Failure("timeout")),
        (ServiceUnavailable("x", code="upstream_unavailable"), Failure("connect")),
        (ServiceUnavailable("x", code="shutting_down"), None),
        (InvalidParameter("x"), None),
    ],
)
def test_errors_are_classified(error: Exception, expected: Failure | None) -> None:
    assert classify(error) == expected  # type: ignore[arg-type]


def test_only_the_providers_failures_move_on_to_a_fallback() -> None:
    assert not Failure("rejected").fallback and not Failure("rejected").retryable
    assert Failure("auth").fallback and not Failure("auth").retryable
    assert all(Failure(k).retryable and Failure(k).breaker for k in ("overloaded", "server", "timeout", "connect"))


def test_the_split_follows_the_weights() -> None:
    policy = route_policy([{"model": "mini", "weight": 90}, {"model": "big", "weight": 10}])
    counts = Counter(split_target(policy, f"req-{n}") for n in range(10_000))
    assert 8_800 < counts["mini"] < 9_200 and counts["mini"] + counts["big"] == 10_000
    assert all(split_target(policy, f"req-{n}") == split_target(policy, f"req-{n}") for n in range(100))


def test_a_route_plan_tries_the_target_then_the_fallbacks_once_each() -> None:
    configured = {"big": ("other",), "mini": ("big", "other"), "other": (), "claude": ()}
    policy = route_policy([{"model": "mini"}], fallbacks=("claude", "missing", "big"))
    route = plan_route("big", policy, "r1", configured)
    assert route.chain == ("mini", "claude", "big", "other")  # unknown names left out, none twice
    assert plan_route("big", None, "r1", configured).chain == ("big", "other")
    unknown_target = route_policy([{"model": "missing"}])
    assert plan_route("big", unknown_target, "r1", configured).chain == ("big", "other")
