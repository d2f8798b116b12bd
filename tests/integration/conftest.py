"""Real PostgreSQL and Redis for integration tests: skipped when unreachable, except in CI, where they must run.

Override the servers with NETRA_TEST_POSTGRES (an asyncpg DSN on the maintenance database) and NETRA_TEST_REDIS.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import create_engine, create_sessionmaker
from core.migrate import upgrade_relational
from core.settings import Settings
from tests.fake_upstream import FakeUpstream
from tests.integration.batch_gateway import BatchNetra, batch_settings
from tests.integration.batch_gateway import running as running_batch
from tests.integration.harness import Gateway, gateway_settings, running_gateway
from tests.integration.redis_door import RedisDoor

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN = os.environ.get("NETRA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NETRA_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unavailable(service: str, reason: object) -> None:
    """Skip the test, or fail it when running in CI (where the services are part of the job)."""
    message = f"{service} is unreachable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration services are required)")
    pytest.skip(message)


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN}", exc)
        raise  # unreachable: skip/fail raise


def _database_url(name: str) -> str:
    parts = urlsplit(POSTGRES_ADMIN)
    return urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A SQLAlchemy URL of a PostgreSQL database created for this test and dropped after it."""
    name = f"netra_test_{uuid.uuid4().hex[:12]}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _database_url(name)
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def redis_token() -> str:
    """A token unique to this test; every Redis key the test creates contains it, so cleanup touches only those."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_token: str) -> AsyncIterator[Redis]:
    """A client on the real Redis; keys containing the test's token are deleted afterwards."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        unavailable(f"Redis at {REDIS_URL}", exc)
    yield client
    keys = [key async for key in client.scan_iter(match=f"*{redis_token}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def gateway(settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_settings(settings, tmp_path, fake_upstream), fake_upstream) as running:
        yield running


@pytest.fixture
def bsettings(settings: Settings, pg_url: str, tmp_path: Path, fake_upstream: FakeUpstream) -> Settings:
    """Settings of the Batch API tests' gateway: PostgreSQL, and OpenAI, Azure and Anthropic on the fake."""
    return batch_settings(settings, pg_url, tmp_path, fake_upstream)


@pytest.fixture
async def batch_netra(bsettings: Settings, fake_upstream: FakeUpstream) -> AsyncIterator[BatchNetra]:
    """The Batch API tests' gateway, running, with a key per tenant."""
    async with running_batch(bsettings, fake_upstream) as running:
        yield running


@pytest.fixture
def pg_settings(pg_url: str, tmp_path: Path) -> Settings:
    """Settings on a data dir of this test's with its own PostgreSQL database."""
    return Settings(data_dir=tmp_path / "data", database_url=pg_url, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def sessions(pg_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on that PostgreSQL database, migrated to the newest schema."""
    await asyncio.to_thread(upgrade_relational, pg_settings)
    engine = create_engine(pg_settings)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def door(redis_client: Redis) -> AsyncIterator[RedisDoor]:
    """A loopback door in front of the real Redis that a test can shut (down) or jam (hung)."""
    async with RedisDoor(REDIS_URL) as opened:
        yield opened
