"""The policy store on a real PostgreSQL: the migration, the full history, and concurrent changes serialised."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.migrate import alembic_config
from core.settings import Settings
from gateway.policy_holder import PolicyHolder
from policies.loader import load_policies
from policies.models import AnyPolicy
from policies.store import (
    activate_policy,
    active_policies,
    add_policies,
    edit_policy,
    list_policies,
    policies_version,
    policy_history,
    retire_policy,
)

pytestmark = pytest.mark.postgres

POLICY = """
kind: cache
name: deterministic chat
priority: 5
match: {tenants: [acme], temperature: {max: 0}}
ttl: 1h
"""
ME = "human:pg"


def policy(ttl: str = "1h") -> AnyPolicy:
    (loaded,) = load_policies(POLICY.replace("ttl: 1h", f"ttl: {ttl}"), "p.yaml")
    return loaded


async def test_the_migration_creates_the_policy_tables_and_the_counter_row(
    sessions: async_sessionmaker[AsyncSession], pg_settings: Settings, pg_url: str
) -> None:
    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        tables = {r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )}
        counter = await conn.fetch("SELECT id, version FROM policy_revision")
        revision = await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    assert {"policy_versions", "policy_events", "policy_revision"} <= tables
    assert [tuple(r) for r in counter] == [(1, 0)]
    assert [revision] == ScriptDirectory.from_config(alembic_config(pg_settings)).get_heads()


async def test_history_is_kept_on_postgres(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        (pid,) = await add_policies(session, [policy()], ME)
        await activate_policy(session, pid, "human:bob")
        await edit_policy(session, pid, policy("15m"), "agent:run-7")
        await retire_policy(session, pid, "human:carol")
    async with sessions() as session:
        history = await policy_history(session, pid)
        assert await active_policies(session) == []
        assert await policies_version(session) == 4
        (listed,) = await list_policies(session, "retired")
    assert [(v.version, v.status, v.document["ttl"]) for v in history.versions] == [
        (1, "superseded", 3600), (2, "retired", 900),
    ]
    assert [(e.version, e.action, e.actor) for e in history.events] == [
        (1, "added", ME), (1, "activated", "human:bob"), (2, "edited", "agent:run-7"),
        (2, "activated", "agent:run-7"), (2, "retired", "human:carol"),
    ]
    assert all(e.at.tzinfo is not None for e in history.events) and listed.version == 2


async def test_concurrent_edits_each_make_their_own_version(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        (pid,) = await add_policies(session, [policy()], ME)
        await activate_policy(session, pid, ME)

    async def edit(n: int) -> int:
        async with sessions() as session:
            return (await edit_policy(session, pid, policy(f"{n + 1}m"), f"human:editor{n}")).version

    made = await asyncio.gather(*(edit(n) for n in range(8)))
    assert sorted(made) == list(range(2, 10))  # no two edits took the same number, none failed
    async with sessions() as session:
        history = await policy_history(session, pid)
        (active,) = await active_policies(session)
        assert await policies_version(session) == 2 + 8
    assert [v.status for v in history.versions] == ["superseded"] * 8 + ["active"]
    assert active.version == 9


async def test_a_holder_follows_postgres(sessions: async_sessionmaker[AsyncSession]) -> None:
    holder = PolicyHolder(sessions, None, poll_interval=600)
    await holder.start()
    try:
        assert holder.snapshot.policies == ()
        async with sessions() as session:
            (pid,) = await add_policies(session, [policy()], ME)
            await activate_policy(session, pid, ME)
        assert await holder.refresh()
        assert [p.id for p in holder.snapshot.policies] == [pid] and holder.version == 2
    finally:
        await holder.close()
