"""Users who sign in through the OIDC issuer: created on their first sign-in with the role the map gives them,
kept at that role on every later one, and bound to the issuer's subject.

Such a user has no password: its password_hash holds a marker (`!oidc:` and the SHA-256 of issuer and subject)
that no Argon2 hash starts with, so no password can match it, and that ties the account to the one identity at
the issuer (an email address reassigned there to someone else does not open it).
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.user_store import UserError, UserExists, check_role, create_user, user_by_email
from core.users import User

MARKER_PREFIX = "!oidc:"


class SignInRefused(UserError):
    """This identity may not sign in; `code` says why (user_disabled, sso_account_conflict)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def subject_marker(issuer: str, subject: str) -> str:
    """The password_hash of the user this issuer's subject signs in as."""
    return MARKER_PREFIX + hashlib.sha256(f"{issuer}\x00{subject}".encode()).hexdigest()


def is_sso_user(user: User) -> bool:
    """Whether the user signs in through the issuer (and has no password)."""
    return user.password_hash.startswith(MARKER_PREFIX)


async def _found_or_created(session: AsyncSession, email: str, marker: str, role: str, address: str) -> User:
    user = await user_by_email(session, email)
    if user is not None:
        return user
    try:
        return await create_user(session, email, marker, role, actor=f"oidc:{email}", address=address)
    except UserExists:
        # Two first sign-ins racing: the other created the user; carry on with it.
        found = await user_by_email(session, email)
        assert found is not None
        return found


async def _set_role(session: AsyncSession, user: User, role: str, address: str) -> None:
    before = user.public()
    user.role = role
    audit.record(session, f"oidc:{user.email}", "user.role", ("user", user.id), before=before, after=user.public(),
                 address=address)
    await session.commit()


async def sso_sign_in(
    session: AsyncSession, email: str, issuer: str, subject: str, role: str, *, address: str
) -> User:
    """The user this identity signs in as, created (audited) on first sign-in, its role made the mapped one
    (audited when it changes); SignInRefused for a disabled user or an email that belongs to someone else."""
    marker = subject_marker(issuer, subject)
    user = await _found_or_created(session, email, marker, check_role(role), address)
    if not hmac.compare_digest(user.password_hash.encode(), marker.encode()):
        # A password account, or another subject's: linking them by email alone would let whoever holds the
        # address at the issuer take the account over.
        raise SignInRefused(
            f"The account {user.email} is not linked to this single sign-on identity; sign in with its password "
            "or ask an admin.", "sso_account_conflict")
    if user.disabled:
        raise SignInRefused("This account is disabled.", "user_disabled")
    if user.role != role:
        await _set_role(session, user, role, address)
    return user
