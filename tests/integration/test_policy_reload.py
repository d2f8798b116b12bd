"""Hot reload: a gateway process's policy snapshot follows the store, by Redis notice or by polling, and outlives
a database outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cli.policies import announce
from core.db import create_engine, create_sessionmaker
from core.migrate import upgrade_relational_async
from core.settings import Settings
from gateway.policy_holder import PolicyHolder
from policies.loader import load_policies
from policies.store import activate_policy, add_policies, policies_version, retire_policy
from tests.integration.conftest import REDIS_URL
from tests.integration.redis_door import RedisDoor

POLICY = "kind: cache\nname: deterministic chat\nmatch: {tenants: [acme]}\nttl: 1h\n"
ME = "human:test"
# The promise: a change reaches every gateway process within this long.
WITHIN = 2.0


@dataclass
class Store:
    """A migrated SQLite store and the engine behind it (disposed to cut its connections)."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    data_dir: Path


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    await upgrade_relational_async(settings)
    engine = create_engine(settings)
    yield Store(engine, create_sessionmaker(engine), settings.data_dir)
    await engine.dispose()


async def proposed(store: Store) -> str:
    """A new proposed cache policy's id."""
    async with store.sessions() as session:
        (pid,) = await add_policies(session, load_policies(POLICY, "p.yaml"), ME)
    return pid


async def activate(store: Store, pid: str) -> int:
    """Activate a policy through the store; returns the change counter after it."""
    async with store.sessions() as session:
        await activate_policy(session, pid, ME)
        return await policies_version(session)


async def until(condition: str, check: object, seconds: float = WITHIN) -> None:
    """Wait until `check()` holds, failing after `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            while not check():  # type: ignore[operator]
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"{condition} did not happen within {seconds} s")


def active_ids(holder: PolicyHolder) -> list[str | None]:
    return [p.id for p in holder.snapshot.policies]


async def test_start_loads_the_active_policies(store: Store) -> None:
    pid = await proposed(store)
    version = await activate(store, pid)
    holder = PolicyHolder(store.sessions, None, poll_interval=60)
    await holder.start()
    try:
        assert active_ids(holder) == [pid] and holder.version == holder.snapshot.version == version
    finally:
        await holder.close()


@pytest.mark.redis
async def test_a_redis_notice_swaps_the_snapshot_without_waiting_for_the_poll(
    store: Store, redis_client: Redis
) -> None:
    # A poll interval far beyond the deadline: only the notice can bring the change in time.
    holder = PolicyHolder(store.sessions, redis_client, poll_interval=600)
    await holder.start()
    try:
        await until("subscribing to change notices", lambda: holder.subscribed)
        before = holder.snapshot
        assert before.policies == ()
        pid = await proposed(store)
        version = await activate(store, pid)
        await asyncio.to_thread(announce, REDIS_URL, version)  # what `netra policies activate` publishes
        await until("the activated policy in the snapshot", lambda: active_ids(holder) == [pid])
        assert holder.snapshot.version == version and before.policies == ()  # swapped whole, the old one intact
    finally:
        await holder.close()


async def test_without_redis_the_poll_brings_changes_in(store: Store) -> None:
    holder = PolicyHolder(store.sessions, None, poll_interval=0.1)
    await holder.start()
    try:
        pid = await proposed(store)
        await activate(store, pid)
        await until("the activated policy in the snapshot", lambda: active_ids(holder) == [pid])
        async with store.sessions() as session:
            await retire_policy(session, pid, ME)
        await until("the retired policy gone from the snapshot", lambda: active_ids(holder) == [])
    finally:
        await holder.close()


@pytest.mark.redis
async def test_with_redis_down_the_poll_still_brings_changes_in(store: Store, redis_client: Redis) -> None:
    async with RedisDoor(REDIS_URL, mode="down") as door:
        redis = Redis.from_url(door.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        holder = PolicyHolder(store.sessions, redis, poll_interval=0.1)
        await holder.start()
        try:
            pid = await proposed(store)
            await activate(store, pid)
            await until("the activated policy in the snapshot", lambda: active_ids(holder) == [pid])
            assert not holder.subscribed
        finally:
            await holder.close()
            await redis.aclose()


async def test_the_last_snapshot_serves_while_the_database_is_unreachable(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    pid = await proposed(store)
    await activate(store, pid)
    holder = PolicyHolder(store.sessions, None, poll_interval=600)
    await holder.start()
    try:
        served = holder.snapshot
        away = store.data_dir.with_name("away")
        store.data_dir.rename(away)  # the database file is gone for new connections...
        await store.engine.dispose()  # ...and no pooled connection still reaches it
        with caplog.at_level(logging.WARNING, logger="netra.gateway.policies"):
            assert [await holder.refresh() for _ in range(3)] == [False, False, False]
        assert holder.snapshot is served and active_ids(holder) == [pid]
        assert [r.getMessage() for r in caplog.records].count(
            "policy store unreachable; the last policy snapshot keeps serving"
        ) == 1  # once per outage, not once per poll

        away.rename(store.data_dir)
        async with store.sessions() as session:
            await retire_policy(session, pid, ME)
        assert await holder.refresh() and active_ids(holder) == []
    finally:
        await holder.close()
