"""Admin passwords: Argon2id hashes at a configurable cost, and the rules a new password must meet.

Hashing and verifying take tens of milliseconds of CPU on purpose: async callers run them in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from core.settings import Settings

MAX_PASSWORD_LENGTH = 1024
PARALLELISM = 4


@dataclass(frozen=True, slots=True)
class HashCost:
    """Argon2id's work factors for new hashes (verifying reads them from the stored hash)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024

    @classmethod
    def of(cls, settings: Settings) -> HashCost:
        """The cost the settings ask for."""
        return cls(settings.admin_password_hash_time_cost, settings.admin_password_hash_memory_kib)


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


def hash_password(password: str, cost: HashCost) -> str:
    """The Argon2id hash to store."""
    hasher = PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=PARALLELISM,
                            type=Type.ID)
    return hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """Whether the password matches the stored hash (never raises for a mismatch or a damaged hash)."""
    try:
        return PasswordHasher().verify(stored, password)  # the hash carries its own type and cost
    except (VerificationError, InvalidHashError):
        return False
