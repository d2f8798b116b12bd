"""Refresh tokens: random, stored as a SHA-256, rotated on every use; a rotated token used again revokes its family.

A stolen refresh token is then good for one use at most: whichever of the thief and the owner refreshes second
presents a token already rotated, and every token descended from that login stops working.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.keys import hash_key, new_id
from core.users import RefreshToken


class RefreshRefused(Exception):
    """The token cannot be used; `reason` is unknown, revoked, expired or reused."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refresh token {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rotation:
    """A successful refresh: whose token it was and the token replacing it."""

    user_id: str
    token: str


async def issue(
    session: AsyncSession, user_id: str, now: datetime, ttl: timedelta, family_id: str | None = None
) -> str:
    """Store a new token (of a new family unless one is given), commit, and return it in plain text."""
    token = secrets.token_urlsafe(32)
    session.add(RefreshToken(
        id=new_id("rt"), family_id=family_id or new_id("fam"), user_id=user_id, token_hash=hash_key(token),
        created_at=now, expires_at=now + ttl,
    ))
    await session.commit()
    return token


async def _find(session: AsyncSession, token: str) -> RefreshToken:
    found = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == hash_key(token)))
    if found is None:
        raise RefreshRefused("unknown")
    return found


async def _claim(session: AsyncSession, row: RefreshToken, now: datetime) -> bool:
    """Mark the token rotated unless someone else just did (two refreshes racing with one token)."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(rotated_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


async def rotate(session: AsyncSession, token: str, now: datetime, ttl: timedelta) -> Rotation:
    """Exchange a token for the next of its family; a token already rotated revokes the whole family."""
    row = await _find(session, token)
    if row.revoked_at is not None:
        raise RefreshRefused("revoked")
    if row.rotated_at is None and row.expires_at <= now:
        raise RefreshRefused("expired")
    if row.rotated_at is not None or not await _claim(session, row, now):
        await revoke_family(session, row.family_id, now)
        await session.commit()
        raise RefreshRefused("reused")
    return Rotation(row.user_id, await issue(session, row.user_id, now, ttl, row.family_id))


async def revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
    """Revoke every live token of a family (not committed: the caller's transaction carries it)."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke(session: AsyncSession, token: str, now: datetime) -> str | None:
    """Log out: revoke the token's family and commit; the user id, or None for a token we do not know."""
    try:
        row = await _find(session, token)
    except RefreshRefused:
        return None
    await revoke_family(session, row.family_id, now)
    await session.commit()
    return row.user_id


async def revoke_user(session: AsyncSession, user_id: str, now: datetime) -> None:
    """Revoke every live token of a user (not committed: disabling the user commits it)."""
    await session.execute(
        update(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
