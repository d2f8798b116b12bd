"""In the ledger process: read-only queries from the socket's readers, on a client and thread of their own.

The query client is a second chDB handle on the same store whose session is read-only and limited
(core/ledger_reader.py `READ_SETTINGS`): ClickHouse refuses writes, results past the row limit and queries past
the time limit. It has its own thread, so a long query never holds up ingest's inserts (chDB runs both at
once); queries run one at a time, each bounded by the time limit, so readers cannot pile up work either.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from core.ledger_reader import open_read_client
from core.ledger_socket import dump_line
from core.settings import Settings

log = logging.getLogger("netra.ledger")


def error_line(message: str, code: str) -> bytes:
    """A refusal as a reply line."""
    return dump_line({"error": {"message": message, "code": code}})


class _Refused(Exception):
    """A query the engine refused: its reply line, and the client to be replaced."""

    def __init__(self, line: bytes) -> None:
        super().__init__("query refused")
        self.line = line


def _answer(client: Client, sql: str, parameters: dict[str, Any]) -> bytes:
    """Run one query and render its reply line (both off the event loop: a big result costs CPU to encode)."""
    try:
        result = client.query(sql, parameters=parameters or None)
        return dump_line({"columns": list(result.column_names), "rows": result.result_rows})
    except (ClickHouseError, TypeError, ValueError) as exc:  # refused by the engine, or parameters it cannot bind
        raise _Refused(error_line(str(exc), "query_refused")) from exc
    except Exception as exc:  # the client's own failure to read a result: the reader gets an error, not a hang
        raise _Refused(error_line(f"the query failed: {exc!r}", "query_failed")) from exc


def parse_request(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of a request (ValueError when it is not one)."""
    sql, parameters = message.get("sql"), message.get("parameters") or {}
    if not isinstance(sql, str) or not sql.strip():
        raise ValueError('a query is {"sql": "SELECT …", "parameters": {…}}')
    if not isinstance(parameters, dict):
        raise ValueError('"parameters" is an object of named values')
    return sql, parameters


class QueryRunner:
    """The read-only client and the one thread its queries run on."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-query")
        self._client: Client | None = None
        self._turn = asyncio.Lock()  # one query at a time, and the client replaced between two

    async def _open(self) -> bool:
        """Open the read-only client (the store's tables exist by now); False, logged, when it cannot be opened.

        Ingest never waits on it: a reader asking later gets another try, or an error.
        """
        settings = self._settings
        try:
            self._client = await self._run(
                open_read_client, settings.resolved_clickhouse_url, settings.clickhouse_database
            )
        except Exception as exc:  # the reader gets an error line; ingest goes on regardless
            log.error("ledger process: the read-only query client cannot be opened: %s", exc)
            return False
        return True

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def answer(self, sql: str, parameters: dict[str, Any]) -> bytes:
        """The reply line for one query."""
        async with self._turn:
            return await self._answer(sql, parameters)

    async def _answer(self, sql: str, parameters: dict[str, Any]) -> bytes:
        # No client: the last query failed (its client may hold the rest of a broken result), or opening failed.
        if self._client is None and not await self._open():
            return error_line("the ledger's read-only client cannot be opened; see the gateway's log", "unavailable")
        assert self._client is not None
        try:
            line: bytes = await self._run(_answer, self._client, sql, parameters)
        except _Refused as refused:
            # A fresh handle after any failure: a client whose result was cut off mid-stream may misread the next.
            client, self._client = self._client, None
            await self._run(client.close)
            return refused.line
        return line

    async def close(self) -> None:
        """Wait for the query in hand, then close the client."""
        await asyncio.to_thread(self._executor.shutdown, True)
        if self._client is not None:
            self._client.close()
            self._client = None
