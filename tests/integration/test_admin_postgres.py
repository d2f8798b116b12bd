"""The admin app on PostgreSQL: sign-in, rotation, throttling and the audit log the database keeps append-only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import refresh_tokens
from core.migrate import alembic_config
from core.settings import Settings
from core.user_store import create_user, user_by_email
from tests.unit.admin_harness import PASSWORD_HASH, running_admin

pytestmark = pytest.mark.postgres


async def add_audited_user(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        await create_user(session, "root@example.com", PASSWORD_HASH, "admin", actor="human:ops")


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'someone else'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
])
async def test_postgres_refuses_to_edit_the_audit_log(
    sessions: async_sessionmaker[AsyncSession], statement: str
) -> None:
    await add_audited_user(sessions)
    async with sessions() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(text(statement))
        await session.rollback()
        rows = (await session.execute(text("SELECT actor, action FROM audit_log"))).all()
    assert [tuple(r) for r in rows] == [("human:ops", "user.create")]


async def test_sign_in_refresh_and_disable_on_postgres(
    pg_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with running_admin(pg_settings, sessions) as admin:
        await admin.add_user("root@example.com", "admin")
        ana_id = await admin.add_user("ana@example.com", "viewer")
        root = await admin.token("root@example.com")
        ana = await admin.client("198.51.100.5")
        assert (await admin.login("ana@example.com", address="198.51.100.5")).status_code == 200
        stolen = ana.cookies["netra_refresh"]
        assert (await ana.post("/api/auth/refresh", headers={"x-csrf-token": ana.cookies["netra_csrf"]})).is_success
        thief = await admin.new_client("192.0.2.9")
        thief.cookies.set("netra_refresh", stolen, path="/api/auth")
        thief.cookies.set("netra_csrf", "c")
        assert (await thief.post("/api/auth/refresh", headers={"x-csrf-token": "c"})).status_code == 401
        http = await admin.client()
        assert (await http.post(f"/api/users/{ana_id}/disable", headers=root)).status_code == 200
        audit = (await http.get("/api/audit", headers=root)).json()["data"]
        assert audit[0]["action"] == "user.disable" and audit[0]["before"]["disabled"] is False


async def test_lockout_on_postgres(pg_settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
    settings = pg_settings.model_copy(update={"admin_login_max_failures": 2})
    async with running_admin(settings, sessions) as admin:
        await admin.add_user("ana@example.com", "viewer")
        for _ in range(2):
            assert (await admin.login("ana@example.com", "wrong password!")).status_code == 401
        assert (await admin.login("ana@example.com")).status_code == 429


async def test_downgrade_removes_the_tables_and_the_trigger_function(
    pg_settings: Settings, pg_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(pg_settings), "0004")
    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        functions = await conn.fetch("SELECT 1 FROM pg_proc WHERE proname = 'audit_log_refuse'")
    finally:
        await conn.close()
    assert not tables & {"users", "refresh_tokens", "login_attempts", "audit_log"} and not functions
    await asyncio.to_thread(command.upgrade, alembic_config(pg_settings), "head")


async def test_two_refreshes_racing_with_one_token_let_one_through(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_audited_user(sessions)
    now, ttl = datetime.now(UTC), timedelta(hours=1)
    async with sessions() as session:
        user = await user_by_email(session, "root@example.com")
        assert user is not None
        token = await refresh_tokens.issue(session, user.id, now, ttl)

    async def use() -> refresh_tokens.Rotation | str:
        async with sessions() as session:
            try:
                return await refresh_tokens.rotate(session, token, now, ttl)
            except refresh_tokens.RefreshRefused as exc:
                return exc.reason

    outcomes = await asyncio.gather(use(), use())
    winners = [o for o in outcomes if isinstance(o, refresh_tokens.Rotation)]
    assert len(winners) == 1 and "reused" in outcomes
    async with sessions() as session:  # the race counts as reuse: the winner's token went with the family
        with pytest.raises(refresh_tokens.RefreshRefused, match="revoked"):
            await refresh_tokens.rotate(session, winners[0].token, now, ttl)
