"""Deployments: every (provider, upstream model) serving a configured model name, with its breaker and budget.

A model name listed more than once in netra.yaml has several deployments. Calls go to the deployment with the
fewest requests in flight in this process whose breaker lets calls through (ties rotate), preferring one this
request has not already seen fail.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.config import GatewayConfig, ModelConfig
from core.metrics import GatewayMetrics
from core.settings import Settings
from gateway.providers.base import Provider
from gateway.routing.breaker import Breaker, BreakerState
from gateway.routing.budget import RetryBudget


@dataclass(eq=False, slots=True)
class Deployment:
    """One place a model is served; `in_flight` counts this process's requests on it now."""

    model: ModelConfig
    provider: Provider
    breaker: Breaker
    budget: RetryBudget
    in_flight: int = field(default=0)

    @property
    def label(self) -> str:
        """How metrics and logs name it: provider/upstream model."""
        return f"{self.model.provider}/{self.model.upstream_name}"

    def release(self) -> None:
        """A request on it is over."""
        self.in_flight -= 1


class Deployments:
    """The deployments of every configured model, built once per process in the lifespan."""

    def __init__(
        self, config: GatewayConfig, providers: dict[str, Provider], settings: Settings, metrics: GatewayMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._by_name: dict[str, list[Deployment]] = {}
        self._turn = itertools.count()
        # Every served model name with its own fallbacks (route plans leave out names not in here).
        self.fallbacks = {m.name: config.fallbacks_of(m.name) for m in config.models}
        for model in config.models:
            deployment = _deployment(model, providers[model.provider], settings, metrics, clock)
            self._by_name.setdefault(model.name, []).append(deployment)

    def of(self, name: str) -> tuple[Deployment, ...]:
        """The deployments of a model name (none when it is not configured)."""
        return tuple(self._by_name.get(name, ()))

    def all(self) -> Iterable[Deployment]:
        """Every deployment."""
        return itertools.chain.from_iterable(self._by_name.values())

    def pick(self, name: str, endpoint: str, seen_failing: set[Deployment]) -> Deployment | None:
        """The least busy deployment that may be called now (fresh ones first), or None when every breaker is open."""
        usable = [d for d in self._by_name.get(name, ()) if d.provider.supports(endpoint) and d.breaker.available()]
        if not usable:
            return None
        fresh = [d for d in usable if d not in seen_failing] or usable
        least = min(d.in_flight for d in fresh)
        tied = [d for d in fresh if d.in_flight == least]
        return tied[next(self._turn) % len(tied)]

    def retry_in(self, name: str) -> float:
        """Seconds until some deployment of the model accepts a call again (0 if one does now)."""
        return min((d.breaker.retry_in() for d in self._by_name.get(name, ())), default=0.0)


def _deployment(
    model: ModelConfig, provider: Provider, settings: Settings, metrics: GatewayMetrics, clock: Callable[[], float]
) -> Deployment:
    gauge = metrics.breaker_state.labels(f"{model.provider}/{model.upstream_name}")
    gauge.set(BreakerState.CLOSED)
    breaker = Breaker(settings.breaker_failures, settings.breaker_open_seconds, clock, lambda s: gauge.set(s))
    return Deployment(model, provider, breaker, RetryBudget(settings.retry_budget, clock=clock))
