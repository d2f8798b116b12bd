"""Backoff: growth, the cap, reset, jitter bounds, the per-attempt function, Retry-After, and the loops built on it."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict

from core.backoff import Backoff, Jitter, delay_for, retry_after_seconds
from gateway.ledger.ingest import FIRST_BACKOFF, MAX_BACKOFF
from gateway.ledger.remote import HEALTHY_RUN, restart_pause

NOW = 1_700_000_000.0


def test_each_attempt_doubles_the_delay_up_to_the_cap() -> None:
    delays = [delay_for(attempt, 0.2, 5.0) for attempt in range(1, 10)]
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0]


def test_the_factor_sets_the_growth() -> None:
    assert [delay_for(attempt, 1.0, 100.0, factor=3.0) for attempt in range(1, 6)] == [1, 3, 9, 27, 81]
    assert [delay_for(attempt, 1.0, 100.0, factor=1.0) for attempt in range(1, 4)] == [1, 1, 1]


def test_a_retry_loop_that_ran_for_ever_stays_at_the_cap() -> None:
    assert delay_for(100_000, 0.1, 5.0) == 5.0  # base * 2**99999 overflows a float: still the cap, no error


@pytest.mark.parametrize(
    ("attempt", "base", "maximum", "factor", "jitter"),
    [(0, 0.1, 1.0, 2.0, "none"), (1, -0.1, 1.0, 2.0, "none"), (1, 0.1, -1.0, 2.0, "none"),
     (1, 0.1, float("inf"), 2.0, "none"), (1, 0.1, 1.0, 0.5, "none"), (1, 0.1, 1.0, 2.0, "sometimes")],
)
def test_nonsense_arguments_are_refused(
    attempt: int, base: float, maximum: float, factor: float, jitter: Jitter
) -> None:
    with pytest.raises(ValueError):
        delay_for(attempt, base, maximum, factor, jitter)


@pytest.mark.parametrize("jitter", ["full", "equal"])
def test_jitter_stays_within_its_bounds_and_under_the_cap(jitter: Jitter) -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(0.2 * 2 ** (attempt - 1), 3.0)
        floor = 0.0 if jitter == "full" else ceiling / 2
        draws = [delay_for(attempt, 0.2, 3.0, jitter=jitter, rng=rng) for _ in range(300)]
        assert all(floor <= draw <= ceiling <= 3.0 for draw in draws), (attempt, min(draws), max(draws))
        assert len(set(draws)) > 250  # really spread out, not one value
        # The draws fill their range: some near the bottom, some near the top.
        assert min(draws) < floor + (ceiling - floor) * 0.1 and max(draws) > ceiling - (ceiling - floor) * 0.1


def test_a_seeded_generator_gives_the_same_delays() -> None:
    first = [delay_for(n, 0.2, 5.0, jitter="full", rng=random.Random(42)) for n in range(1, 8)]
    again = [delay_for(n, 0.2, 5.0, jitter="full", rng=random.Random(42)) for n in range(1, 8)]
    assert first == again
    assert first != [delay_for(n, 0.2, 5.0) for n in range(1, 8)]


def test_jitter_without_a_generator_still_varies_and_stays_bounded() -> None:
    draws = {delay_for(3, 0.2, 5.0, jitter="full") for _ in range(50)}
    assert len(draws) > 40 and all(0 <= draw <= 0.8 for draw in draws)


def test_a_provider_retry_after_is_waited_for_but_never_past_the_cap() -> None:
    assert delay_for(1, 0.2, 5.0, retry_after=2.5) == 2.5  # longer than our own delay: the provider's wins
    assert delay_for(4, 0.2, 5.0, retry_after=0.5) == 1.6  # shorter: ours
    assert delay_for(1, 0.2, 5.0, retry_after=120.0) == 5.0  # beyond the cap: the cap
    jittered = delay_for(2, 0.2, 5.0, jitter="full", rng=random.Random(1), retry_after=0.4)
    assert jittered == 0.4  # full jitter drew at most 0.4, so the provider's 0.4 stands


def test_backoff_hands_out_growing_pauses_and_peeks_without_moving() -> None:
    backoff = Backoff(0.5, 10.0)
    assert backoff.peek == 0.5 and backoff.peek == 0.5  # peeking does not use up a pause
    assert [backoff.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.attempts == 7 and backoff.peek == 10.0


def test_reset_starts_again_from_the_first_pause() -> None:
    backoff = Backoff(0.5, 10.0)
    for _ in range(4):
        backoff.next()
    backoff.reset()
    assert backoff.attempts == 0 and backoff.peek == 0.5
    assert [backoff.next(), backoff.next()] == [0.5, 1.0]


def test_backoff_jitter_is_bounded_by_its_unjittered_pause() -> None:
    backoff = Backoff(0.1, 2.0, jitter="equal", rng=random.Random(3))
    for _ in range(40):
        ceiling = backoff.peek
        pause = backoff.next()
        assert ceiling / 2 <= pause <= ceiling <= 2.0


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(1.0, 10.0, factor=0.0)
    with pytest.raises(ValueError):
        Backoff(float("nan"), 10.0)


# --- the loops built on it keep their schedules -------------------------------------------------------------------


def test_the_ledger_retries_keep_their_schedule() -> None:
    backoff = Backoff(FIRST_BACKOFF, MAX_BACKOFF)
    assert [backoff.next() for _ in range(9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


def test_an_ingest_child_dying_young_is_restarted_ever_later_and_a_healthy_one_promptly() -> None:
    backoff = Backoff(0.5, 10.0)
    assert [restart_pause(backoff, 1.0) for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert restart_pause(backoff, HEALTHY_RUN + 1) == 0.5  # it ran for a while: it was healthy, so start over
    assert restart_pause(backoff, 2.0) == 1.0
    assert restart_pause(backoff, HEALTHY_RUN) == 2.0  # not longer than the healthy run: still growing


# --- reading a provider's Retry-After -----------------------------------------------------------------------------


def headers(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({name.replace("_", "-").title(): value for name, value in values.items()})


def test_retry_after_in_seconds_and_milliseconds() -> None:
    assert retry_after_seconds(headers(retry_after="7"), NOW) == 7.0
    assert retry_after_seconds(headers(retry_after="1.5"), NOW) == 1.5
    assert retry_after_seconds(headers(retry_after_ms="250"), NOW) == 0.25
    assert retry_after_seconds(headers(retry_after_ms="250", retry_after="9"), NOW) == 0.25  # the precise one wins
    assert retry_after_seconds({"retry-after": "3"}, NOW) == 3.0


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
    assert retry_after_seconds(headers(retry_after=later), NOW) == 30.0
    earlier = format_datetime(datetime.fromtimestamp(NOW - 30, UTC), usegmt=True)
    assert retry_after_seconds(headers(retry_after=earlier), NOW) == 0.0  # already past: retry now
    assert retry_after_seconds(headers(retry_after="Tue, 14 Nov 2023 22:13:50 -0000"), NOW) == 30.0


@pytest.mark.parametrize("value", ["soon", "", "-5", "nan", "inf", "Tue, 99 Foo 2023"])
def test_an_unreadable_retry_after_is_as_if_absent(value: str) -> None:
    assert retry_after_seconds(headers(retry_after=value), NOW) is None
    assert retry_after_seconds(headers(retry_after_ms=value), NOW) is None


def test_no_retry_after_at_all() -> None:
    assert retry_after_seconds(headers(), NOW) is None
