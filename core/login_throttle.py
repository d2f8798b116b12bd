"""Login throttling: an account, or a client address, with too many failed logins in a window is locked out.

The window slides: a lock ends when enough failures have aged out of it, so an attacker gets at most `max`
guesses per window, whatever the rhythm. A successful login clears its account's count (not its address's:
one known password must not buy unlimited guesses at other accounts from the same address).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.users import LoginAttempt


@dataclass(frozen=True, slots=True)
class Throttle:
    """How many failures, per account and per address, a window tolerates."""

    window: timedelta
    per_account: int
    per_address: int


async def _failure_times(session: AsyncSession, since: datetime, match: ColumnElement[bool]) -> list[datetime]:
    query = select(LoginAttempt.at).where(LoginAttempt.at > since, LoginAttempt.succeeded.is_(False), match)
    return sorted((await session.scalars(query)).all())


def _wait(failures: list[datetime], limit: int, window: timedelta, now: datetime) -> float | None:
    """Seconds until fewer than `limit` failures remain in the window, or None when that is already so."""
    if len(failures) < limit:
        return None
    # The lock lifts when the failure `limit` places before the newest leaves the window.
    frees_at = failures[len(failures) - limit] + window
    return max(1.0, math.ceil((frees_at - now).total_seconds()))


async def locked_for(
    session: AsyncSession, email: str, address: str, now: datetime, throttle: Throttle
) -> float | None:
    """Seconds before this account may try again from this address, or None when it may try now."""
    since = now - throttle.window
    last_success = await session.scalar(
        select(func.max(LoginAttempt.at)).where(LoginAttempt.email == email, LoginAttempt.succeeded.is_(True))
    )
    account_since = max(since, last_success) if last_success is not None else since
    waits = [
        _wait(await _failure_times(session, account_since, LoginAttempt.email == email),
              throttle.per_account, throttle.window, now),
        _wait(await _failure_times(session, since, LoginAttempt.address == address),
              throttle.per_address, throttle.window, now),
    ]
    known = [w for w in waits if w is not None]
    return max(known) if known else None


async def note_attempt(
    session: AsyncSession, email: str, address: str, succeeded: bool, now: datetime, throttle: Throttle
) -> None:
    """Record an attempt and forget those older than the window; commits."""
    session.add(LoginAttempt(at=now, email=email, address=address, succeeded=succeeded))
    # Successes are kept as long as failures: the newest one bounds its account's count.
    await session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - throttle.window))
    await session.commit()
