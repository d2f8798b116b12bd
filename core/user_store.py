"""Admin users in the relational store: create, list, find, disable; every change writes its audit entry."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.keys import new_id
from core.models import utcnow
from core.refresh_tokens import revoke_user
from core.users import ROLES, User

# Deliberately loose (one @, something either side, no spaces or control characters): the mail system, not us,
# knows which addresses exist.
_EMAIL = re.compile(r"^[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+$")
MAX_EMAIL_LENGTH = 320


class UserError(ValueError):
    """A user operation that cannot be carried out, with a message for the operator."""


class InvalidUser(UserError):
    """A malformed email or an unknown role."""


class UserExists(UserError):
    """The email is taken."""


class UserNotFound(UserError):
    """No user has this email or id."""


def normalise_email(email: str) -> str:
    """The stored form of an email: trimmed and lower-cased, or InvalidUser when it is not one."""
    normal = email.strip().lower()
    if len(normal) > MAX_EMAIL_LENGTH or not _EMAIL.match(normal):
        raise InvalidUser("not an email address")
    return normal


def check_role(role: str) -> str:
    """The role, or InvalidUser naming the known ones."""
    if role not in ROLES:
        raise InvalidUser(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    return role


async def create_user(
    session: AsyncSession, email: str, password_hash: str, role: str, *, actor: str, address: str | None = None
) -> User:
    """Create a user (the password already hashed) and its audit entry, in one commit."""
    user = User(
        id=new_id("usr"), email=normalise_email(email), password_hash=password_hash, role=check_role(role),
        disabled=False, created_at=utcnow(),
    )
    session.add(user)
    audit.record(session, actor, "user.create", ("user", user.id), before=None, after=user.public(), address=address)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise UserExists(f"a user with email {user.email!r} already exists") from exc
    return user


async def list_users(session: AsyncSession) -> list[User]:
    """Every user, oldest first."""
    return list((await session.scalars(select(User).order_by(User.created_at, User.email))).all())


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this email (any case), or None."""
    try:
        normal = normalise_email(email)
    except InvalidUser:
        return None
    return await session.scalar(select(User).where(User.email == normal))


async def count_users(session: AsyncSession) -> int:
    """How many users exist, disabled ones included."""
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def disable_user(session: AsyncSession, user: User, *, actor: str, address: str | None = None) -> User:
    """Disable a user and revoke its refresh tokens (its access tokens stop at their next use); idempotent."""
    if user.disabled:
        return user
    before = user.public()
    now = utcnow()
    user.disabled, user.disabled_at = True, now
    await revoke_user(session, user.id, now)
    audit.record(session, actor, "user.disable", ("user", user.id), before=before, after=user.public(),
                 address=address)
    await session.commit()
    return user


async def disable_by_email(session: AsyncSession, email: str, *, actor: str, address: str | None = None) -> User:
    """Disable the user with this email, or UserNotFound."""
    user = await user_by_email(session, email)
    if user is None:
        raise UserNotFound(f"no user with email {email.strip().lower()!r}")
    return await disable_user(session, user, actor=actor, address=address)
