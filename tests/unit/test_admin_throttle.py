"""Login throttling: lockout per account and per client address, lifting as failures leave the window."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.settings import Settings
from tests.unit.admin_harness import Admin, running_admin
from tests.unit.conftest import Database
from tests.unit.helpers import assert_envelope

WRONG = "not the password at all"


@pytest.fixture
def throttled(settings: Settings) -> Settings:
    """Small limits so the tests stay short: 3 failures per account, 5 per address, in 10 minutes."""
    return settings.model_copy(update={
        "admin_login_max_failures": 3, "admin_login_max_failures_per_address": 5, "admin_login_window": 600,
    })


@pytest.fixture
async def admin(throttled: Settings, database: Database) -> AsyncIterator[Admin]:
    async with running_admin(throttled, database.sessions) as running:
        await running.add_user("ana@example.com", "admin")
        yield running


async def fail_times(admin: Admin, email: str, times: int, address: str = "203.0.113.7") -> None:
    """Fail to sign in `times` times, checking each is an ordinary wrong-password answer."""
    for _ in range(times):
        assert (await admin.login(email, WRONG, address)).status_code == 401


async def test_account_locks_after_failures_even_for_the_right_password(admin: Admin) -> None:
    await fail_times(admin, "ana@example.com", 3)
    locked = await admin.login("ana@example.com")
    assert locked.status_code == 429
    assert_envelope(locked.json(), type="rate_limit_error", code="login_locked")
    assert int(locked.headers["retry-after"]) == 600


async def test_account_lock_holds_from_every_address(admin: Admin) -> None:
    await fail_times(admin, "ana@example.com", 1, "198.51.100.1")
    await fail_times(admin, "ana@example.com", 1, "198.51.100.2")
    await fail_times(admin, "ANA@example.com", 1, "198.51.100.3")
    assert (await admin.login("ana@example.com", address="198.51.100.4")).status_code == 429


async def test_lock_lifts_as_failures_leave_the_window(admin: Admin) -> None:
    await fail_times(admin, "ana@example.com", 1)
    admin.clock.advance(300)
    await fail_times(admin, "ana@example.com", 2)
    locked = await admin.login("ana@example.com")
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) == 300
    admin.clock.advance(301)  # the first failure has left the window: one more try
    assert (await admin.login("ana@example.com")).status_code == 200


async def test_success_clears_the_account_count(admin: Admin) -> None:
    await fail_times(admin, "ana@example.com", 2)
    assert (await admin.login("ana@example.com")).status_code == 200
    await fail_times(admin, "ana@example.com", 2)
    assert (await admin.login("ana@example.com")).status_code == 200


async def test_address_locks_after_failures_across_accounts(admin: Admin) -> None:
    await admin.add_user("bo@example.com", "viewer")
    for email in ("x1@example.com", "x2@example.com", "x3@example.com", "x4@example.com", "x5@example.com"):
        await fail_times(admin, email, 1, "192.0.2.200")
    locked = await admin.login("bo@example.com", address="192.0.2.200")
    assert locked.status_code == 429
    assert_envelope(locked.json(), type="rate_limit_error", code="login_locked")
    assert (await admin.login("bo@example.com", address="192.0.2.201")).status_code == 200


async def test_unknown_accounts_lock_like_known_ones(admin: Admin) -> None:
    await fail_times(admin, "ghost@example.com", 3)
    assert (await admin.login("ghost@example.com")).status_code == 429
