"""Routing and resilience: route plans, deployments, circuit breakers and retry budgets."""

from __future__ import annotations

from gateway.routing.breaker import Breaker, BreakerState
from gateway.routing.budget import RetryBudget
from gateway.routing.deployments import Deployment, Deployments
from gateway.routing.plan import Route, plan_route, split_target

__all__ = [
    "Breaker", "BreakerState", "Deployment", "Deployments", "RetryBudget", "Route", "plan_route", "split_target",
]
