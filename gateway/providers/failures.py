"""Upstream failures as a small taxonomy that retries, fallbacks and circuit breakers all read.

    kind        what happened                              retry  fallback  breaker
    rejected    the provider refused the request (4xx)      no     no        no (the deployment answered)
    auth        the provider refused Netra's credential     no     yes       yes
    overloaded  429 / 529: rate limited or overloaded       yes    yes       yes
    server      5xx, garbage, a stream ended early          yes    yes       yes
    timeout     no answer in time                           yes    yes       yes
    connect     cannot reach or lost the connection         yes    yes       yes

`retry_after` is the provider's own hint in seconds (`retry-after-ms`, `retry-after` as seconds or an HTTP date),
None when it sent none: Netra never invents one on the provider's behalf.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from core.backoff import retry_after_seconds
from core.errors import NetraError, ServiceUnavailable, UpstreamFailed, UpstreamRejected, UpstreamTimeout

FailureKind = Literal["rejected", "auth", "overloaded", "server", "timeout", "connect"]
_RETRYABLE: frozenset[str] = frozenset({"overloaded", "server", "timeout", "connect"})
_BY_CODE: dict[str, FailureKind] = {
    "upstream_auth_error": "auth", "upstream_error": "server", "upstream_overloaded": "overloaded",
    "upstream_unavailable": "connect", "upstream_timeout": "timeout",
}


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, classified."""

    kind: FailureKind
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        """Worth another attempt at the same model."""
        return self.kind in _RETRYABLE

    @property
    def fallback(self) -> bool:
        """Another model may answer instead: anything but a refusal of the request itself."""
        return self.kind != "rejected"

    @property
    def breaker(self) -> bool:
        """Counts against the deployment's circuit breaker."""
        return self.kind != "rejected"


def classify(error: NetraError) -> Failure | None:
    """The failure an upstream error stands for; None for an error that is not the provider's (never retried)."""
    if isinstance(error, UpstreamRejected):
        return Failure("rejected")
    if isinstance(error, UpstreamFailed | UpstreamTimeout | ServiceUnavailable):
        kind = _BY_CODE.get(error.code)
        return Failure(kind, error.provider_retry_after) if kind is not None else None
    return None


def parse_retry_after(headers: Any) -> float | None:
    """The provider's retry hint in seconds (None: it sent none, or no headers)."""
    return None if headers is None else retry_after_seconds(headers, time.time())


def retry_after_header(seconds: float) -> dict[str, str]:
    """A `retry-after` header (whole seconds, at least 1) for an answer to the client."""
    return {"retry-after": str(max(1, math.ceil(seconds)))}


def provider_hint(error: NetraError, headers: Any) -> NetraError:
    """The error with the provider's retry hint noted, and passed on to the client when it sent one."""
    hint = parse_retry_after(headers)
    error.provider_retry_after = hint
    if hint is not None:
        error.headers.update(retry_after_header(hint))
    return error
