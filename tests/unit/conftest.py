"""Fixtures of the unit tests: a migrated SQLite database, the upstream HTTP session, the fake provider and an
OpenAI client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import openai
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db import create_engine, create_sessionmaker
from core.migrate import upgrade_relational_async
from core.settings import Settings
from gateway.providers.http import create_session
from tests.fake_upstream import FakeUpstream


@dataclass
class Database:
    """A migrated relational database and its session maker."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """A SQLite file in tmp_path with the real migrations applied."""
    await upgrade_relational_async(settings)
    engine = create_engine(settings)
    yield Database(engine, create_sessionmaker(engine))
    await engine.dispose()


@pytest.fixture
async def http_session(settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """The gateway's upstream session, closed after the test."""
    session = create_session(settings)
    yield session
    await session.close()


@pytest.fixture
def fake(fake_upstream: FakeUpstream) -> FakeUpstream:
    """The fake provider (tests/conftest.py's `fake_upstream`: compact JSON unless a test parametrises
    `fake_wire`), under the short name its own tests use."""
    return fake_upstream


@pytest.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official OpenAI SDK pointed at the fake, without retries."""
    async with openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key=fake.api_key, max_retries=0) as sdk:
        yield sdk
