"""A circuit breaker per deployment: stop calling a provider that keeps failing, probe it again later.

closed ──(N consecutive failures)──▶ open ──(open time passed)──▶ half-open: one probe at a time
  ▲                                    ▲                               │
  └────────────(probe succeeds)────────┴────────(probe fails)──────────┘
While open, `allow()` is False and no call is made: the request goes to its fallbacks, or gets a 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    """The gauge values exported in /metrics (netra_breaker_state)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Breaker:
    """Consecutive-failure breaker with a fixed open time and a single half-open probe."""

    __slots__ = ("_clock", "_failures", "_opened_at", "_probing", "failures_to_open", "on_change", "open_seconds")

    def __init__(
        self, failures_to_open: int, open_seconds: float, clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.failures_to_open, self.open_seconds = failures_to_open, open_seconds
        self._clock = clock
        self.on_change = on_change
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """Closed, open, or half-open (the open time has passed: one probe may go)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self.open_seconds:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self) -> bool:
        """Whether a call may go now; in half-open, True once until that probe reports back."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probing:
            return False
        self._probing = True
        self._notify()
        return True

    def available(self) -> bool:
        """Whether `allow()` would say yes, without taking the half-open probe."""
        state = self.state
        return state is BreakerState.CLOSED or (state is BreakerState.HALF_OPEN and not self._probing)

    def retry_in(self) -> float:
        """Seconds until the breaker lets a probe through (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.open_seconds - self._clock())

    def success(self) -> None:
        """A call got its answer: close."""
        changed = self._opened_at is not None
        self._failures, self._opened_at, self._probing = 0, None, False
        if changed:
            self._notify()

    def failure(self) -> None:
        """A call failed: open after enough in a row, or again at once when the probe failed."""
        self._failures += 1
        if self._probing or (self._opened_at is None and self._failures >= self.failures_to_open):
            self._opened_at, self._probing = self._clock(), False
            self._notify()

    def release(self) -> None:
        """A probe that ended without a verdict (cancelled, or refused for the request itself) frees its slot."""
        self._probing = False

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self.state)
