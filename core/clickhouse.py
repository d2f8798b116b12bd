"""The analytics store: ClickHouse through clickhouse-connect, embedded chDB by default.

Every call here blocks. Async code goes through `ClickHouseStore.run`, which serialises calls on one
worker thread (a chDB handle belongs to one process and is not meant to be shared across threads). Readiness
asks `responsive`, which never queues behind a long insert on that thread.
"""

from __future__ import annotations

import asyncio
import fcntl
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from core.callrow import to_json_each_row
from core.settings import Settings

T = TypeVar("T")
CALLS_TABLE = "llm_calls"
# Deduplicate identical retried blocks in the table and in every materialized view fed by it.
INSERT_SETTINGS: dict[str, Any] = {
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    # A column the table does not have yet (a row spilled by a newer Netra) must not block the backlog.
    "input_format_skip_unknown_fields": 1,
}


# Error codes for data ClickHouse cannot take (parse failures, wrong types, values out of range): sending the same
# bytes again cannot succeed, unlike an outage.
_DATA_ERRORS = frozenset({6, 26, 27, 32, 38, 41, 53, 69, 70, 72, 117, 130, 321, 386})
_ERROR_CODE = re.compile(r"Code: (\d+)\.")


def refused_as_data(exc: BaseException) -> bool:
    """Whether ClickHouse refused an insert because of the rows themselves (not because it is unreachable)."""
    if not isinstance(exc, ClickHouseError):
        return False
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        match = _ERROR_CODE.search(str(exc))
        code = int(match.group(1)) if match else None
    return code in _DATA_ERRORS


class ClickHouseLocked(RuntimeError):
    """The embedded store's directory is held by another process (a running Netra)."""


def held_by_other_process(location: Path) -> bool:
    """Whether another process holds the embedded engine's lock on this directory."""
    status = location / "status"
    if not status.exists():
        return False
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def refuse_if_held(settings: Settings) -> None:
    """Raise ClickHouseLocked when the configured embedded store is held by another process."""
    url = settings.resolved_clickhouse_url
    if url.startswith("chdb://") and held_by_other_process(Path(url.removeprefix("chdb://"))):
        raise ClickHouseLocked(
            f"the embedded ClickHouse store in {settings.data_dir} is in use by a running Netra; stop it first, "
            "or point NETRA_CLICKHOUSE_URL at a ClickHouse server"
        )


def open_client(url: str, database: str) -> Client:
    """A client on `url` whose default database exists and is selected."""
    if url.startswith("chdb://"):
        Path(url.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    try:
        client = clickhouse_connect.get_client(dsn=url)
    except (ClickHouseError, RuntimeError) as exc:
        location = Path(url.removeprefix("chdb://"))
        if url.startswith("chdb://") and held_by_other_process(location):
            raise ClickHouseLocked(
                f"the embedded ClickHouse store at {location} is in use by another process "
                "(a running Netra); stop it first, or point NETRA_CLICKHOUSE_URL at a ClickHouse server"
            ) from exc
        raise
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    client.database = database
    return client


class ClickHouseStore:
    """A client plus the single worker thread all of its calls run on."""

    def __init__(self, client: Client, *, embedded: bool) -> None:
        self.client = client
        self.embedded = embedded
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        # Calls submitted and not finished: the loop adds, the worker (or a cancellation) removes, hence the lock.
        self._jobs = 0
        self._jobs_lock = threading.Lock()
        self._answered = True  # whether the last finished call reached the store

    @classmethod
    def open(cls, settings: Settings) -> ClickHouseStore:
        """Open the configured store (blocking)."""
        url = settings.resolved_clickhouse_url
        return cls(open_client(url, settings.clickhouse_database), embedded=url.startswith("chdb://"))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call on the store's worker thread."""
        with self._jobs_lock:
            self._jobs += 1
        future = self._executor.submit(self._call, fn, *args)
        future.add_done_callback(self._job_done)
        return await asyncio.wrap_future(future)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            result = fn(*args)
        except Exception as exc:
            self._answered = refused_as_data(exc)  # refusing the rows is an answer; anything else may be an outage
            raise
        self._answered = True
        return result

    def _job_done(self, _: object) -> None:
        with self._jobs_lock:
            self._jobs -= 1

    async def responsive(self) -> bool:
        """Whether the store answers: a ping when the worker is idle, else how the last finished call went.

        A ping would queue behind the call in progress (an insert can take seconds); that call is itself
        contact with the store, and a failure of it or of the calls before it says the store is away.
        """
        if self._jobs:
            return self._answered
        try:
            await self.run(self.client.command, "SELECT 1")
        except (ClickHouseError, OSError, RuntimeError):
            return False
        return True

    def insert_rows(self, rows: Sequence[bytes | dict[str, Any]], token: str) -> None:
        """Insert ledger rows; a retry with the same token is deduplicated by ClickHouse.

        Rows are spilled JSON lines (bytes) or row dicts, sent as JSONEachRow, which ClickHouse parses natively:
        building the native format in Python costs several times more CPU per row, and that CPU is the
        gateway's (chDB runs in its process).
        """
        settings = dict(INSERT_SETTINGS, insert_deduplication_token=token)
        self.client.raw_insert(CALLS_TABLE, None, to_json_each_row(rows), settings=settings, fmt="JSONEachRow")

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a SELECT."""
        return [tuple(row) for row in self.client.query(sql, parameters=parameters).result_rows]

    def command(self, sql: str) -> None:
        """Run a statement that returns nothing."""
        self.client.command(sql)

    def ping(self) -> bool:
        """Whether the store answers."""
        try:
            self.client.command("SELECT 1")
        except (ClickHouseError, OSError, RuntimeError):
            return False
        return True

    def close(self) -> None:
        """Close the client and stop the worker thread."""
        self._executor.shutdown(wait=True)
        self.client.close()
