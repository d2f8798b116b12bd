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


def drop_test_database(chdb_dir: Path, database: str) -> None:
    """Drop a test's database from the session's chDB, if the test made one.

    Every database left behind keeps its tables' background tasks (merges, cleanups) and threads in this process:
    hundreds of them made each later test slower than the one before.
    """
    if not (chdb_dir / "metadata" / f"{database}.sql").exists():
        return  # never created: no need to start the engine for nothing
    store = ClickHouseStore(open_client(f"chdb://{chdb_dir}", "default"), embedded=True)
    try:
        store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    finally:
        store.close()


@pytest.fixture
def settings(tmp_path: Path, chdb_dir: Path) -> Iterator[Settings]:
    """Settings on a fresh data dir, SQLite, memory backends and a database of its own in the session's chDB
    (dropped afterwards)."""
    configured = Settings(
        data_dir=tmp_path / "data",
        clickhouse_url=f"chdb://{chdb_dir}",
        clickhouse_database=f"t_{uuid.uuid4().hex[:12]}",
        ledger_ingest="thread",  # the tests read the rows from this process's own embedded store
        _env_file=None,  # type: ignore[call-arg]
    )
    yield configured
    drop_test_database(chdb_dir, configured.clickhouse_database)


@pytest.fixture
def clickhouse_store(settings: Settings) -> Iterator[ClickHouseStore]:
    """A migrated ClickHouse store in a database no other test uses; dropped afterwards."""
    store = ClickHouseStore(open_client(settings.resolved_clickhouse_url, settings.clickhouse_database), embedded=True)
    upgrade_clickhouse(store)
    yield store
    store.close()  # the settings fixture drops the database


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
