"""The policy store on a real SQLite file: versions are added, never overwritten; every change is counted."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.models import PolicyEvent, PolicyVersion
from policies.loader import load_policies
from policies.models import AnyPolicy, CachePolicy
from policies.store import (
    PolicyStoreError,
    activate_policy,
    active_policies,
    add_policies,
    edit_policy,
    list_policies,
    policies_version,
    policy_history,
    retire_policy,
)
from tests.unit.conftest import Database

ACME = """
kind: cache
name: deterministic chat for acme
priority: 10
match: {tenants: [acme], models: [gpt-4o-mini], endpoints: [chat/completions], temperature: {max: 0}}
ttl: 1h
cache_nondeterministic: false
"""
ROUTE = """
kind: route
name: cheaper model for summaries
author: agent:run-42
match: {tags: [summary]}
targets: [{model: gpt-4o-mini}]
"""
ME = "human:alice"


def policy(text: str = ACME) -> AnyPolicy:
    """The one policy a YAML text holds, through the loader users' files go through."""
    (loaded,) = load_policies(text, "policy.yaml")
    return loaded


async def changes(sessions: async_sessionmaker[AsyncSession]) -> int:
    """The change counter a gateway polls."""
    async with sessions() as session:
        return await policies_version(session)


async def history(sessions: async_sessionmaker[AsyncSession], policy_id: str) -> list[tuple[int, str]]:
    """(version, status) of every version, oldest first."""
    async with sessions() as session:
        return [(v.version, v.status) for v in (await policy_history(session, policy_id)).versions]


async def events(sessions: async_sessionmaker[AsyncSession], policy_id: str) -> list[tuple[int, str, str]]:
    """(version, action, actor) of every event, in order."""
    async with sessions() as session:
        return [(e.version, e.action, e.actor) for e in (await policy_history(session, policy_id)).events]


async def test_add_stores_each_document_as_proposed_version_one(database: Database) -> None:
    sessions = database.sessions
    assert await changes(sessions) == 0
    async with sessions() as session:
        ids = await add_policies(session, load_policies(ACME + "---\n" + ROUTE, "two.yaml"), ME)
    assert len(ids) == 2 and len(set(ids)) == 2 and all(i.startswith("pol_") for i in ids)
    assert await changes(sessions) == 1
    async with sessions() as session:
        listed = await list_policies(session)
    assert [(r.policy_id, r.version, r.kind, r.status, r.priority) for r in listed] == [
        (ids[0], 1, "cache", "proposed", 10), (ids[1], 1, "route", "proposed", 0),
    ]
    # Who wrote it: the file's author when it names one, else whoever added it.
    assert [r.author for r in listed] == [ME, "agent:run-42"]
    assert await events(sessions, ids[0]) == [(1, "added", ME)]
    async with sessions() as session:
        assert await active_policies(session) == []


async def test_an_activated_policy_reads_back_as_written(database: Database) -> None:
    sessions = database.sessions
    async with sessions() as session:
        (pid,) = await add_policies(session, [policy()], ME)
        row = await activate_policy(session, pid, "human:bob")
    assert (row.version, row.status) == (1, "active")
    assert await changes(sessions) == 2
    async with sessions() as session:
        (active,) = await active_policies(session)
    assert isinstance(active, CachePolicy)
    assert (active.id, active.version, active.status, active.author) == (pid, 1, "active", ME)
    assert active.ttl_seconds == 3600 and active.priority == 10 and not active.cache_nondeterministic
    assert active.match == policy().match and active.created_at is not None
    assert await events(sessions, pid) == [(1, "added", ME), (1, "activated", "human:bob")]


async def test_activating_twice_changes_nothing(database: Database) -> None:
    sessions = database.sessions
    async with sessions() as session:
        (pid,) = await add_policies(session, [policy()], ME)
        await activate_policy(session, pid, ME)
        before = await policies_version(session)
        again = await activate_policy(session, pid, ME)
    assert again.status == "active"
    assert await changes(sessions) == before
    assert [e[1] for e in await events(sessions, pid)] == ["added", "activated"]


async def test_editing_an_active_policy_activates_the_new_version_and_keeps_the_old(database: Database) -> None:
    sessions = database.sessions
    async with sessions() as session:
        (pid,) = await add_policies(session, [policy()], ME)
        await activate_policy(session, pid, ME)
        row = await edit_policy(session, pid, policy(ACME.replace("ttl: 1h", "ttl: 15m")), "human:carol")
    assert (row.policy_id, row.version, row.status) == (pid, 2, "active")
    assert await history(sessions, pid) == [(1, "superseded"), (2, "active")]
    async with sessions() as session:
        (active,) = await active_policies(session)
        old = await session.scalar(select(PolicyVersion).where(PolicyVersion.version == 1))
    assert (active.version, active.ttl_seconds) == (2, 900)  # type: ignore[union-attr]
    assert old is not None and old.document["ttl"] == 3600  # the first version's document is untouched
    assert (await events(sessions, pid))[-2:] == [(2, "edited", "human:carol"), (2, "activated", "human:carol")]


async def test_editing_a_proposal_makes_another_proposal(database: Database) -> None:
    sessions = database.sessions
    async with sessions() as session:
        (pid,) = await add_policies(session, [policy()], ME)
        row = await edit_policy(session, pid, policy(ACME.replace("priority: 10", "priority: 20")), ME)
    assert (row.version, row.status, row.priority) == (2, "proposed", 20)
    assert await history(sessions, pid) == [(1, "superseded"), (2, "proposed")]
    async with sessions() as session:
        assert await active_policies(session) == []


async def test_retired_policy_leaves_the_active_set_and_comes_back_only_through_an_edit(database: Database) -> None:
    sessions = database.sessions
    async with sessions() as session:
        (pid,) = await add_policies(session, [policy()], ME)
        await activate_policy(session, pid, ME)
        retired = await retire_policy(session, pid, "human:dave")
        assert retired.status == "retired" and await active_policies(session) == []
        with pytest.raises(PolicyStoreError, match="is retired"):
            await activate_policy(session, pid, ME)
        proposed = await edit_policy(session, pid, policy(), ME)
        assert (proposed.version, proposed.status) == (2, "proposed")
        await activate_policy(session, pid, ME)
        (active,) = await active_policies(session)
    assert active.version == 2
    assert await history(sessions, pid) == [(1, "retired"), (2, "active")]
    assert [e[1] for e in await events(sessions, pid)] == ["added", "activated", "retired", "edited", "activated"]


async def test_a_proposal_can_be_retired_unused(database: Database) -> None:
    async with database.sessions() as session:
        (pid,) = await add_policies(session, [policy()], ME)
        await retire_policy(session, pid, ME)
        assert [r.policy_id for r in await list_policies(session, "retired")] == [pid]
        assert await list_policies(session, "proposed") == []


async def test_refused_changes_leave_no_trace(database: Database) -> None:
    sessions = database.sessions
    async with sessions() as session:
        (pid,) = await add_policies(session, [policy()], ME)
    before = await changes(sessions)
    async with sessions() as session:
        with pytest.raises(PolicyStoreError, match="no policy with id 'pol_nope'"):
            await activate_policy(session, "pol_nope", ME)
        with pytest.raises(PolicyStoreError, match="keeps its kind"):
            await edit_policy(session, pid, policy(ROUTE), ME)
        with pytest.raises(PolicyStoreError, match="at most 200"):
            long_name = policy(ACME.replace("name: deterministic", "name: " + "x" * 201))
            await add_policies(session, [policy(), long_name], ME)
        with pytest.raises(PolicyStoreError, match="no policy"):
            await policy_history(session, "pol_nope")
    assert await changes(sessions) == before
    assert await history(sessions, pid) == [(1, "proposed")]
    async with sessions() as session:
        assert len(await list_policies(session)) == 1  # the file with a bad second policy stored neither
        assert len((await session.scalars(select(PolicyEvent))).all()) == 1


async def test_list_filters_by_the_newest_versions_status(database: Database) -> None:
    async with database.sessions() as session:
        first, second, third = await add_policies(session, [policy(), policy(ROUTE), policy()], ME)
        await activate_policy(session, first, ME)
        await edit_policy(session, first, policy(), ME)  # v1 superseded, v2 active
        await retire_policy(session, third, ME)
        assert [(r.policy_id, r.version) for r in await list_policies(session, "active")] == [(first, 2)]
        assert [r.policy_id for r in await list_policies(session, "proposed")] == [second]
        assert [r.policy_id for r in await list_policies(session)] == [first, second, third]
