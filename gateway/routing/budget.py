"""A retry budget per deployment: retries never exceed a fraction of its recent requests (plus a small floor).

Retries multiply load exactly when a provider is struggling; a budget (as in Finagle and Envoy) caps them at
`ratio` of the requests seen over the last `window` seconds, with `floor` retries always allowed per window so a
quiet deployment can still retry. Counts are kept in one-second buckets.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW_SECONDS = 10
# Retries always allowed per window, however few requests there were.
FLOOR = 3


class RetryBudget:
    """Requests and retries over the last window; `try_retry` takes a retry if the budget has one."""

    __slots__ = ("_clock", "_requests", "_retries", "_stamps", "floor", "ratio")

    def __init__(self, ratio: float, floor: int = FLOOR, clock: Callable[[], float] = time.monotonic) -> None:
        self.ratio, self.floor = ratio, floor
        self._clock = clock
        self._stamps = [-1] * WINDOW_SECONDS
        self._requests = [0] * WINDOW_SECONDS
        self._retries = [0] * WINDOW_SECONDS

    def _slot(self) -> int:
        second = int(self._clock())
        slot = second % WINDOW_SECONDS
        if self._stamps[slot] != second:
            self._stamps[slot], self._requests[slot], self._retries[slot] = second, 0, 0
        return slot

    def _sum(self, counts: list[int]) -> int:
        oldest = int(self._clock()) - WINDOW_SECONDS
        return sum(n for n, stamp in zip(counts, self._stamps, strict=True) if stamp > oldest)

    def request(self) -> None:
        """Count a first attempt."""
        self._requests[self._slot()] += 1

    def try_retry(self) -> bool:
        """Take a retry if the window's retries stay within floor + ratio * requests."""
        slot = self._slot()
        if self._sum(self._retries) >= self.floor + self.ratio * self._sum(self._requests):
            return False
        self._retries[slot] += 1
        return True
