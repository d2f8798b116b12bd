"""Admin passwords: Argon2id hashes (argon2-cffi's RFC 9106 defaults), and the rules a new password must meet.

Hashing and verifying take tens of milliseconds of CPU on purpose: async callers run them in a worker thread.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Verified when the email matches no user, so that an unknown address costs the same time as a wrong password.
UNKNOWN_USER_HASH = "$argon2id$v=19$m=65536,t=3,p=4$nAVWIjp7GtgW62H0W7eoZA$Mgepn1rf/0c+XEiXirFyXg3rRCRZ43VH+6FMvodnP9w"
MAX_PASSWORD_LENGTH = 1024


class PasswordRejected(ValueError):
    """A new password that does not meet the rules, with the reason."""


def check_new_password(password: str, min_length: int) -> None:
    """Refuse empty, short, overlong or whitespace-only passwords."""
    if not password.strip():
        raise PasswordRejected("the password is empty")
    if len(password) < min_length:
        raise PasswordRejected(f"the password is too short: use at least {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordRejected(f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """The Argon2id hash to store."""
    return PasswordHasher().hash(password)


def verify_password(stored: str, password: str) -> bool:
    """Whether the password matches the stored hash (never raises for a mismatch or a damaged hash)."""
    try:
        return PasswordHasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
