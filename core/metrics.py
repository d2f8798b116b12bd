"""Prometheus metrics of one app, on a registry of its own (never the global one)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    """The gateway's request, latency, token and in-flight metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "netra_requests", "Requests handled, by route, model and HTTP status.", ["route", "model", "status"],
            registry=r,
        )
        self.tokens = Counter("netra_tokens", "Tokens, by model and kind.", ["model", "kind"], registry=r)
        self.in_flight = Gauge("netra_in_flight_requests", "Requests being handled now.", registry=r)
        self.unpriced = Counter(
            "netra_unpriced_calls", "Calls whose model has no price: logged with cost unknown.", ["model"],
            registry=r,
        )
        self._add_timings(r)
        self._add_cache(r)
        self._add_resilience(r)

    def _add_timings(self, r: CollectorRegistry) -> None:
        self.latency = Histogram(
            "netra_request_duration_seconds", "Time from request to last byte.", ["route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.upstream_latency = Histogram(
            "netra_upstream_duration_seconds", "Time waiting on the provider until its response headers.",
            ["provider"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.ttft = Histogram(
            "netra_time_to_first_token_seconds", "Streaming: time from request to the first relayed event.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r,
        )

    def _add_cache(self, r: CollectorRegistry) -> None:
        self.cache_lookups = Counter(
            "netra_cache_lookups", "Response cache outcomes (hit, miss, coalesced, bypass), by endpoint.",
            ["endpoint", "outcome"], registry=r,
        )
        self.cache_bypass = Counter(
            "netra_cache_bypass", "Cacheable requests served without the cache, by reason (e.g. redis_error).",
            ["reason"], registry=r,
        )

    def _add_resilience(self, r: CollectorRegistry) -> None:
        self.breaker_state = Gauge(
            "netra_breaker_state", "Circuit breaker per deployment (provider/upstream model): 0 closed, 1 half-open, "
            "2 open.", ["deployment"], registry=r,
        )
        self.upstream_retries = Counter(
            "netra_upstream_retries", "Retries of a failed attempt on the same model, by deployment.", ["deployment"],
            registry=r,
        )
        self.retry_budget_exhausted = Counter(
            "netra_retry_budget_exhausted", "Retries refused by the deployment's retry budget.", ["deployment"],
            registry=r,
        )
        self.fallbacks = Counter(
            "netra_fallbacks", "Calls that moved on to the next model of their route, by the model given up.",
            ["model"], registry=r,
        )

    def child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """The labelled child of a metric, cached: `labels()` validates and locks on every call."""
        key = (metric._name, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found
