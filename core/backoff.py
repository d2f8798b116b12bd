"""Exponential backoff: the pause before trying something again, shared by every retry loop in Netra.

Attempt n (counted from 1) waits `base * factor ** (n - 1)`, capped at `maximum`, then jittered:

- "none": exactly that (the ledger's loops, whose timing tests and logs rely on);
- "full": uniformly between 0 and that, so many clients failing together spread out;
- "equal": between half of it and all of it, spread out but never retrying at once.

Jitter only ever shortens the capped delay, so no delay exceeds `maximum`. A provider's Retry-After, when given,
is the least the pause may be (still capped at `maximum`: a caller that would rather give up than retry early
compares the provider's value with its own limit).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

Jitter = Literal["none", "full", "equal"]
_JITTERS: dict[str, Callable[[float, random.Random], float]] = {
    "none": lambda delay, rng: delay,
    "full": lambda delay, rng: rng.uniform(0.0, delay),
    "equal": lambda delay, rng: delay / 2 + rng.uniform(0.0, delay / 2),
}


def delay_for(
    attempt: int,
    base: float,
    maximum: float,
    factor: float = 2.0,
    jitter: Jitter = "none",
    rng: random.Random | None = None,
    retry_after: float | None = None,
) -> float:
    """The pause before retry number `attempt` (1 gives about `base`), never more than `maximum`."""
    _check(base, maximum, factor, jitter)
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    try:
        grown = base * factor ** (attempt - 1)
    except OverflowError:  # a retry loop that ran long enough: it is at the cap anyway
        grown = maximum
    delay = min(grown, maximum)
    if jitter != "none":
        # A generator of its own when none is given: nothing shared at module level, seeded from the OS.
        delay = min(_JITTERS[jitter](delay, rng or random.Random()), maximum)  # noqa: S311 - timing, not crypto
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, maximum)
    return delay


def _check(base: float, maximum: float, factor: float, jitter: str) -> None:
    if not (math.isfinite(base) and base >= 0):
        raise ValueError(f"the first delay must be a finite number of seconds >= 0, got {base}")
    if not (math.isfinite(maximum) and maximum >= 0):
        raise ValueError(f"the maximum delay must be a finite number of seconds >= 0, got {maximum}")
    if not (math.isfinite(factor) and factor >= 1):
        raise ValueError(f"the growth factor must be >= 1, got {factor}")
    if jitter not in _JITTERS:
        raise ValueError(f"jitter must be one of {', '.join(_JITTERS)}, got {jitter!r}")


class Backoff:
    """Successive pauses for one retry loop: `next()` gives the pause to sleep now and grows the next one."""

    def __init__(
        self, first: float, maximum: float, factor: float = 2.0, jitter: Jitter = "none",
        rng: random.Random | None = None,
    ) -> None:
        _check(first, maximum, factor, jitter)
        self.first, self.maximum, self.factor, self.jitter = first, maximum, factor, jitter
        self._rng = rng or random.Random()  # noqa: S311 - timing, not crypto
        self.attempts = 0  # pauses handed out since the last reset

    @property
    def peek(self) -> float:
        """The pause the next `next()` is based on, before jitter (exactly it with jitter "none")."""
        return delay_for(self.attempts + 1, self.first, self.maximum, self.factor)

    def next(self) -> float:
        """The pause to sleep now; the one after it is longer, up to the maximum."""
        self.attempts += 1
        return delay_for(self.attempts, self.first, self.maximum, self.factor, self.jitter, self._rng)

    def reset(self) -> None:
        """Start again from the first pause (the thing being retried worked, or worked for long enough)."""
        self.attempts = 0


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """How long a provider asked us to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date).

    `headers` should look names up case-insensitively (aiohttp's and Starlette's do); `now` is the Unix time,
    used for a date. None when neither header is there or readable; never negative.
    """
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):  # neither a number nor a date: as if absent
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None
