"""Reading the ledger whoever owns it: one interface for the CLI, the admin app and invoicing.

`LedgerReader.query(sql, parameters)` runs one SELECT and returns its rows as tuples of Python values (Decimal
money, datetime times, lists for arrays), as `ClickHouseStore.query` does (a store is a reader too). It blocks:
async code calls it in a thread (`asyncio.to_thread`). Close a reader when done (it is a context manager).
`open_reader(settings)` picks the implementation:

| deployment | reader |
|---|---|
| `NETRA_CLICKHOUSE_URL` names a server | `ServerReader`: clickhouse-connect over HTTP, straight to the server |
| embedded, Netra running | `SocketReader`: the ledger process over `<data_dir>/ledger.sock` |
| embedded, nothing running | `EmbeddedReader`: opens chDB itself, holding the ledger lock while it reads |

Reads of the embedded store (over the socket or directly) run on a client whose session is `readonly=1`, so
ClickHouse itself refuses any write, with a row limit (`max_result_rows`, exceeded = an error, never a silent cut)
and a time limit (`max_execution_time`) that no query can lift: page through big results (core/ledger_export.py).
A refused or failed query raises `LedgerQueryError`; no reachable store raises `LedgerUnavailable`.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseLocked, ClickHouseStore
from core.ledger_socket import connect, dump_line, load_line, socket_path, take_lock
from core.settings import Settings

MAX_RESULT_ROWS = 200_000
MAX_EXECUTION_SECONDS = 30
# Limits first: once `readonly` is set, the session cannot change them (nor readonly itself).
READ_SETTINGS: dict[str, Any] = {
    "max_result_rows": MAX_RESULT_ROWS, "result_overflow_mode": "throw",
    "max_execution_time": MAX_EXECUTION_SECONDS, "readonly": 1,
}
SOCKET_TIMEOUT = MAX_EXECUTION_SECONDS * 2.0  # a query may wait for the one before it, then run its full time
Rows = list[tuple[Any, ...]]


class LedgerUnavailable(RuntimeError):
    """No store could be reached for reading (the ledger process is starting or stopping, or went away)."""


class LedgerQueryError(RuntimeError):
    """The store refused or failed a query (a write, a syntax error, a limit exceeded)."""


class LedgerReader(Protocol):
    """Read-only SQL over the ledger's tables (llm_calls and its rollups)."""

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Rows:
        """The rows of one SELECT (blocking)."""

    def close(self) -> None:
        """Release the connection (and the store, for a reader that opened it)."""


class _Closing:
    """Context-manager support for the readers."""

    def close(self) -> None:
        """Release what the reader holds."""

    def __enter__(self) -> _Closing:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def open_read_client(url: str, database: str) -> Client:
    """A client on the embedded store whose session is read-only and limited (the tables must exist)."""
    client = clickhouse_connect.get_client(dsn=url, settings=dict(READ_SETTINGS))
    client.database = database
    return client


def read_rows(client: Client, sql: str, parameters: dict[str, Any] | None) -> Rows:
    """The rows of one query on `client`, a refusal as LedgerQueryError (blocking)."""
    try:
        return [tuple(row) for row in client.query(sql, parameters=parameters).result_rows]
    except ClickHouseError as exc:
        raise LedgerQueryError(str(exc)) from None


class ServerReader(_Closing):
    """A ClickHouse server, queried directly."""

    def __init__(self, store: ClickHouseStore) -> None:
        self._store = store

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Rows:
        """The rows of one SELECT."""
        return read_rows(self._store.client, sql, parameters)

    def close(self) -> None:
        """Close the client."""
        self._store.close()


class SocketReader(_Closing):
    """The running ledger process, over its socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Rows:
        """Send one query, wait for its rows."""
        try:
            self._sock.sendall(dump_line({"sql": sql, "parameters": parameters or {}}))
        except BrokenPipeError:
            pass  # the ledger closed at once: its refusal is waiting to be read
        try:
            line = self._file.readline()
        except OSError as exc:
            raise LedgerUnavailable(f"the ledger process did not answer: {exc}") from None
        if not line.endswith(b"\n"):
            raise LedgerUnavailable("the ledger process closed the connection (it is stopping); try again")
        reply = load_line(line)
        if "error" in reply:
            raise LedgerQueryError(str(reply["error"].get("message", reply["error"])))
        return [tuple(row) for row in reply["rows"]]

    def close(self) -> None:
        """Close the connection."""
        self._file.close()
        self._sock.close()


class EmbeddedReader(_Closing):
    """The embedded store opened by this process, which holds the ledger lock until it closes."""

    def __init__(self, lock_fd: int, store: ClickHouseStore, client: Client) -> None:
        self._lock_fd = lock_fd
        self._store = store
        self._client = client

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Rows:
        """The rows of one SELECT, read-only."""
        return read_rows(self._client, sql, parameters)

    def close(self) -> None:
        """Close the clients, then let go of the lock."""
        try:
            self._client.close()
            self._store.close()
        finally:
            os.close(self._lock_fd)


def _try_socket(data_dir: Path) -> SocketReader | None:
    try:
        return SocketReader(connect(socket_path(data_dir), SOCKET_TIMEOUT))
    except OSError:
        return None


def _try_embedded(settings: Settings) -> EmbeddedReader | None:
    fd = take_lock(settings.data_dir)
    if fd is None:
        return None  # a ledger process runs (its socket is not up yet, or it is stopping)
    try:
        store = ClickHouseStore.open(settings)
        upgrade_clickhouse(store)  # a fresh data dir reads as an empty ledger, not as an error
        client = open_read_client(settings.resolved_clickhouse_url, settings.clickhouse_database)
    except BaseException:
        os.close(fd)
        raise
    return EmbeddedReader(fd, store, client)


def open_reader(settings: Settings, patience: float = 20.0) -> LedgerReader:
    """A reader on the configured store; LedgerUnavailable when none can be reached within `patience` seconds."""
    if not settings.resolved_clickhouse_url.startswith("chdb://"):
        return ServerReader(ClickHouseStore.open(settings))
    deadline = time.monotonic() + patience
    while True:
        try:
            reader: LedgerReader | None = _try_socket(settings.data_dir) or _try_embedded(settings)
        except ClickHouseLocked:
            # The store is still held by a ledger process on its way out (its lock goes with its exit).
            if time.monotonic() >= deadline:
                raise
            reader = None
        if reader is not None:
            return reader
        if time.monotonic() >= deadline:
            raise LedgerUnavailable(
                f"the ledger process of {settings.data_dir} holds the store but does not answer on its socket"
            )
        time.sleep(0.1)
