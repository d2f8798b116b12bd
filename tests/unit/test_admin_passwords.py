"""Admin passwords: Argon2id at the configured cost, and the rules a new one must meet."""

from __future__ import annotations

import pytest

from core.passwords import HashCost, PasswordRejected, check_new_password, hash_password, verify_password
from core.settings import Settings


def test_default_cost_is_argon2id_at_rfc_9106_second_recommendation(settings: Settings) -> None:
    stored = hash_password("a long enough password", HashCost.of(settings))
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify_password(stored, "a long enough password")
    assert not verify_password(stored, "a long enough passwore")


def test_a_hash_verifies_at_its_own_cost_whatever_the_settings_say_now() -> None:
    stored = hash_password("pw", HashCost(time_cost=1, memory_kib=1024))
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=4$") and verify_password(stored, "pw")


@pytest.mark.parametrize("stored", ["", "not a hash", "$argon2id$v=19$m=1024,t=1,p=4$broken"])
def test_damaged_hashes_never_match(stored: str) -> None:
    assert verify_password(stored, "anything") is False


@pytest.mark.parametrize("password, reason", [
    ("", "empty"),
    ("   \t  ", "empty"),
    ("elevenchars", "too short"),
    ("x" * 1025, "too long"),
])
def test_weak_or_absurd_passwords_are_refused(password: str, reason: str) -> None:
    with pytest.raises(PasswordRejected, match=reason):
        check_new_password(password, 12)


def test_a_long_enough_password_passes() -> None:
    check_new_password("twelve chars", 12)
    assert len("twelve chars") == 12
