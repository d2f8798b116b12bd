"""Single sign-on on PostgreSQL: the first sign-in creates the user, and two first sign-ins racing make one user."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import audit
from core.settings import Settings
from core.user_store import list_users
from tests.unit.oidc_harness import running_sso

pytestmark = pytest.mark.postgres


async def test_sign_in_creates_the_user_on_postgres(
    pg_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with running_sso(pg_settings, sessions) as sso:
        browser = await sso.browser()
        assert (await sso.sign_in(browser)).status_code == 200
        assert (await sso.me(browser)).json()["role"] == "admin"
        async with sessions() as session:
            assert [(u.email, u.role) for u in await list_users(session)] == [("ada@example.com", "admin")]
            actions = [entry.action for entry in await audit.entries(session)]
        assert actions == ["user.create"]


async def test_two_first_sign_ins_racing_make_one_user(
    pg_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with running_sso(pg_settings, sessions) as sso:
        browsers = [await sso.browser(follow=False) for _ in range(2)]
        callbacks = []
        for browser in browsers:
            started = await browser.get("/api/auth/oidc/login")
            callbacks.append((await browser.get(started.headers["location"])).headers["location"])
        done = await asyncio.gather(*(b.get(url) for b, url in zip(browsers, callbacks, strict=True)))
        assert [response.status_code for response in done] == [303, 303]
        async with sessions() as session:
            assert len(await list_users(session)) == 1
            assert [entry.action for entry in await audit.entries(session)] == ["user.create"]
