"""The ledger process on its own: one per data dir, read-only queries over its socket, gone with its last gateway."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from core.ledger_reader import MAX_RESULT_ROWS, LedgerQueryError, SocketReader
from core.ledger_socket import connect, lock_holder, socket_path
from core.settings import Settings
from gateway.ledger.remote import LedgerLauncher, child_settings

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningLedger:
    """A ledger process, kept alive by one gateway-like connection that follows an (empty) spill."""

    settings: Settings
    gateway: socket.socket
    pid: int
    launcher: LedgerLauncher

    def reader(self) -> SocketReader:
        return SocketReader(connect(socket_path(self.settings.data_dir), 60.0))


def _wait_for_store(gateway: socket.socket) -> None:
    """Read the ledger's reports until it says its store is open."""
    lines = gateway.makefile("rb")
    while line := lines.readline():
        if orjson.loads(line).get("store"):
            return
    raise AssertionError("the ledger process closed the connection before opening its store")


def _connect(path: Path) -> socket.socket:
    deadline = time.monotonic() + 60
    while True:
        try:
            return connect(path, 60.0)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _start(data_dir: Path) -> RunningLedger:
    settings = Settings(data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]
    launcher = LedgerLauncher(settings)
    launcher.ensure()
    gateway = _connect(socket_path(settings.data_dir))
    gateway.sendall(orjson.dumps({"follow": uuid.uuid4().hex}) + b"\n")
    _wait_for_store(gateway)
    pid = lock_holder(settings.data_dir)
    assert pid is not None
    return RunningLedger(settings, gateway, pid, launcher)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLedger]:
    """One ledger process for the read-only tests (each start costs seconds: the engine loads)."""
    running = _start(tmp_path_factory.mktemp("ledger") / "data")
    yield running
    running.gateway.close()
    running.launcher.wait(60)


@pytest.fixture
def own_ledger(tmp_path: Path) -> Iterator[RunningLedger]:
    """A ledger process for a test that ends it."""
    running = _start(tmp_path / "data")
    yield running
    running.gateway.close()
    running.launcher.wait(60)


@pytest.mark.parametrize("sql", [
    "INSERT INTO llm_calls (request_id) VALUES ('forged')",
    "ALTER TABLE llm_calls DELETE WHERE 1",
    "DROP TABLE llm_calls",
    "TRUNCATE TABLE llm_calls",
    "CREATE TABLE mine (a Int8) ENGINE = Memory",
    "SELECT 1 SETTINGS readonly = 0",
])
def test_writes_over_the_socket_are_refused_by_the_engine(ledger: RunningLedger, sql: str) -> None:
    with ledger.reader() as reader:
        with pytest.raises(LedgerQueryError, match=r"readonly|READONLY"):
            reader.query(sql)
        # The same connection still answers, and the table is intact.
        assert reader.query("EXISTS TABLE llm_calls") == [(1,)]
        assert reader.query("SELECT count() FROM llm_calls WHERE request_id = 'forged'") == [(0,)]


def test_a_result_past_the_row_limit_is_an_error_not_a_silent_cut(ledger: RunningLedger) -> None:
    with ledger.reader() as reader:
        with pytest.raises(LedgerQueryError, match="Limit for result exceeded"):
            reader.query(f"SELECT number FROM numbers({MAX_RESULT_ROWS + 1})")
        with pytest.raises(LedgerQueryError, match="max_result_rows"):
            reader.query("SELECT 1 SETTINGS max_result_rows = 0")  # the limit cannot be lifted


def test_typed_values_and_parameters_cross_the_socket_intact(ledger: RunningLedger) -> None:
    sql = ("SELECT toDecimal64({money:String}, 9), toDateTime64('2026-11-01 12:00:00.123456', 6, 'UTC'), "
           "[toDecimal32('1.5', 2)], {name:String}, nan")
    with ledger.reader() as reader:
        (money, when, amounts, name, nan), = reader.query(sql, {"money": "0.000000123", "name": "acme"})
    assert money == Decimal("0.000000123") and isinstance(money, Decimal)
    assert when.replace(tzinfo=UTC) == datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert amounts == [Decimal("1.50")] and name == "acme" and nan != nan


def test_a_bad_request_gets_an_error_and_the_connection_goes_on(ledger: RunningLedger) -> None:
    with connect(socket_path(ledger.settings.data_dir), 60.0) as sock:
        lines = sock.makefile("rb")
        sock.sendall(b'{"sql": 42}\n{"sql": "SELECT 1 +"}\n{"sql": "SELECT 2"}\n')
        assert orjson.loads(lines.readline())["error"]["code"] == "invalid_request"
        assert orjson.loads(lines.readline())["error"]["code"] == "query_refused"
        assert orjson.loads(lines.readline()) == {"columns": ["2"], "rows": [[2]]}


def test_a_second_ledger_process_for_the_same_data_dir_leaves_at_once(ledger: RunningLedger) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "gateway.ledger.ledgerd"], input=child_settings(ledger.settings), cwd=ROOT,
        capture_output=True, timeout=60,
    )
    assert second.returncode == 0
    assert lock_holder(ledger.settings.data_dir) == ledger.pid
    with ledger.reader() as reader:
        assert reader.query("SELECT 1") == [(1,)]


def test_the_ledger_process_stops_when_its_last_gateway_leaves(own_ledger: RunningLedger) -> None:
    ledger = own_ledger
    reader = ledger.reader()
    ledger.gateway.close()
    assert ledger.launcher.wait(60) == 0
    assert not socket_path(ledger.settings.data_dir).exists()
    with pytest.raises(Exception, match=r"closed the connection|did not answer"):
        reader.query("SELECT 1")
    reader.close()

