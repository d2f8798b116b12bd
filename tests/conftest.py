"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore, open_client
from core.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded ClickHouse directory for the whole session: chDB allows one engine path per process."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def settings(tmp_path: Path, chdb_dir: Path) -> Settings:
    """Settings on a fresh data dir, SQLite, memory backends and a database of its own in the session's chDB."""
    return Settings(
        data_dir=tmp_path / "data",
        clickhouse_url=f"chdb://{chdb_dir}",
        clickhouse_database=f"t_{uuid.uuid4().hex[:12]}",
        ledger_ingest="thread",  # the tests read the rows from this process's own embedded store
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def clickhouse_store(settings: Settings) -> Iterator[ClickHouseStore]:
    """A migrated ClickHouse store in a database no other test uses; dropped afterwards."""
    store = ClickHouseStore(open_client(settings.resolved_clickhouse_url, settings.clickhouse_database), embedded=True)
    upgrade_clickhouse(store)
    yield store
    store.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse_database}`")
    store.close()


@pytest.fixture
def fake_wire() -> str:
    """How the fake provider lays out its JSON and SSE: compact unless a test parametrises it over every layout
    (``@pytest.mark.parametrize("fake_wire", WIRES)``, WIRES from tests/fake_upstream_wire.py)."""
    return "compact"


@pytest.fixture
async def fake_upstream(fake_wire: str) -> AsyncIterator[object]:
    """The fake OpenAI/Anthropic provider on a loopback port."""
    from tests.fake_upstream import FakeUpstream

    async with FakeUpstream(wire=fake_wire) as fake:
        yield fake
