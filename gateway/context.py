"""What the gateway learns about one request as it goes, from arrival to the ledger row."""

from __future__ import annotations

import time
from typing import Any

from core.usage import Usage

# Endpoints whose calls are billable and therefore recorded in the ledger.
LEDGER_ENDPOINTS = frozenset({"chat/completions", "completions", "embeddings", "responses"})


class CallContext:
    """Mutable per-request record; the middleware creates it and turns it into a log line and a ledger row."""

    __slots__ = (
        "cache_outcome", "cancelled", "completion_chars", "deferred", "ended_t", "endpoint", "error_code",
        "first_byte_t", "headers", "key_id", "method", "outcome", "path", "policy_id", "policy_version", "prompt_chars",
        "provider", "received_t", "received_us", "request_hash", "request_id", "requested_model", "requested_name",
        "requested_upstream", "responded", "reused_request_id", "route_policy", "savings_kind", "served_model",
        "served_name", "status", "stream", "tags", "tenant_id", "tenant_name", "upstream_attempts", "upstream_called",
        "usage",
    )

    def __init__(self, request_id: str, method: str, path: str) -> None:
        self.request_id = request_id
        self.method, self.path = method, path
        self.endpoint = path[4:] if path.startswith("/v1/") else path
        self.received_us = time.time_ns() // 1000
        self.received_t = time.perf_counter()
        # When the first byte went out, and when the client left (None: not yet, or never).
        self.first_byte_t: float | None = None
        self.ended_t: float | None = None
        self.status, self.error_code = 0, ""
        self.tenant_id = self.tenant_name = self.key_id = ""
        self._models()
        self.stream = False
        self.cache_outcome = ""
        # The policy that acted, the saving it made ("cache", "coalesce"; "" for none) and whose answer was reused.
        self.policy_id = self.savings_kind = self.reused_request_id = ""
        self.policy_version = 0
        self.usage: Usage | None = None
        self.prompt_chars = self.completion_chars = 0
        self.request_hash = ""
        self.tags: list[str] = []
        self.upstream_attempts = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.outcome = ""
        self.cancelled = self.responded = self.upstream_called = self.deferred = False

    def _models(self) -> None:
        self.requested_model = self.served_model = self.provider = ""
        # Configured model names: the one asked for (whose price is the baseline) and the one that answered (whose
        # price was paid); they differ when a route policy or a fallback sent the call elsewhere.
        self.requested_name = self.served_name = self.requested_upstream = ""
        # The route policy that planned the call (None: none matched).
        self.route_policy: tuple[str, int] | None = None

    @property
    def billable(self) -> bool:
        """Whether this request belongs in the ledger."""
        # A request accepted into the deferred lane (answered 202) gets its row with the batch result instead.
        return self.method == "POST" and self.endpoint in LEDGER_ENDPOINTS and not self.deferred

    def mark_first_byte(self) -> None:
        """Note when the first byte of the answer went out (once)."""
        if self.first_byte_t is None:
            self.first_byte_t = time.perf_counter()

    def client_left(self) -> None:
        """Note that the client went away before its answer was complete, and when."""
        self.cancelled = True
        if self.ended_t is None:
            self.ended_t = time.perf_counter()

    def elapsed_ms(self, until: float | None = None) -> float:
        """Milliseconds since arrival (or until a given perf_counter time)."""
        return ((until if until is not None else time.perf_counter()) - self.received_t) * 1000.0

    def to_time_us(self, t: float) -> int:
        """A perf_counter reading as epoch microseconds."""
        return self.received_us + int((t - self.received_t) * 1_000_000)

    def log_fields(self) -> dict[str, Any]:
        """The access-log line's fields (no prompt, no completion, no secret)."""
        return {
            "request_id": self.request_id, "method": self.method, "path": self.path, "status": self.status,
            "tenant": self.tenant_name, "model": self.requested_model, "served_model": self.served_model,
            "stream": self.stream, "error_code": self.error_code,
            "latency_ms": round(self.elapsed_ms(self.ended_t), 3),
        }
