"""The ledger socket's wire format and its gate: typed values survive the trip; other users are turned away."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from core.ledger_reader import LedgerQueryError, SocketReader
from core.ledger_socket import ShortPath, connect, decode, dump_line, load_line, peer_allowed, peer_uid, socket_path
from core.settings import Settings
from gateway.ledger.ledgerd import LedgerProcess


def test_values_json_cannot_carry_exactly_come_back_as_they_were() -> None:
    row = (Decimal("0.000000123"), datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC), date(2026, 11, 1),
           [Decimal("1.50"), Decimal("-2")], "plain", 7, None, True, 1.25)
    back = load_line(dump_line({"rows": [row]}))["rows"][0]
    assert back == [*row[:3], list(row[3]), *row[4:]]
    assert isinstance(back[0], Decimal) and str(back[0]) == "1.23E-7" and back[1].tzinfo is not None
    assert str(back[3][0]) == "1.50"  # the scale is kept, as ClickHouse sent it


def test_non_finite_floats_and_look_alike_objects() -> None:
    back = load_line(dump_line({"v": [math.nan, math.inf, {"$decimal": "x", "other": 1}]}))["v"]
    assert math.isnan(back[0]) and back[1] == math.inf
    assert back[2] == {"$decimal": "x", "other": 1}  # two keys: a client's object, not a tag
    assert decode({"$date": "2026-01-02"}) == date(2026, 1, 2)


def test_a_line_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError):
        load_line(b"[1, 2]\n")


def test_only_the_own_uid_is_allowed() -> None:
    assert peer_allowed(1000, 1000)
    assert not peer_allowed(1001, 1000)
    assert not peer_allowed(0, 1000)  # not even root: the ledger answers its own user only
    assert not peer_allowed(None, 1000)


def test_peer_uid_reads_the_connecting_process(tmp_path: Path) -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_uid(left) == os.getuid()


def test_a_socket_path_longer_than_sun_path_still_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "ledger.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with server, ShortPath(path) as address:
        server.bind(address)
        server.listen(1)
        assert path.exists()
        with connect(path, 5.0) as client:
            client.sendall(b"x")
            accepted, _ = server.accept()
            with accepted:
                assert accepted.recv(1) == b"x"


async def _refused_reply(settings: Settings, own_uid: int, request: bytes) -> dict[str, object]:
    ledger = LedgerProcess(settings, own_uid=own_uid)
    server = await ledger.listen()
    try:
        def ask() -> dict[str, object]:
            with connect(socket_path(settings.data_dir), 10.0) as sock:
                with contextlib.suppress(BrokenPipeError):  # a refusal may close the connection first
                    sock.sendall(request)
                return load_line(sock.makefile("rb").readline())
        return await asyncio.to_thread(ask)
    finally:
        server.close()


@pytest.mark.parametrize("request_line", [b'{"sql": "SELECT 1"}\n', b'{"follow": "' + b"a" * 32 + b'"}\n'])
async def test_a_peer_of_another_uid_is_refused_before_anything_is_read(tmp_path: Path, request_line: bytes) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    reply = await _refused_reply(settings, os.getuid() + 1, request_line)
    assert reply["error"] == {"message": "permission denied: the ledger answers its own user only", "code": "forbidden"}


async def test_the_own_uid_gets_past_the_gate(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    reply = await _refused_reply(settings, os.getuid(), b"not json\n")
    assert reply["error"] == {"message": "a request is one JSON object per line", "code": "invalid_json"}


async def test_socket_and_data_dir_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    ledger = LedgerProcess(Settings(data_dir=data_dir, _env_file=None))  # type: ignore[call-arg]
    server = await ledger.listen()
    try:
        assert (socket_path(data_dir).stat().st_mode & 0o777) == 0o600
        assert (data_dir.stat().st_mode & 0o777) == 0o700
    finally:
        server.close()


def test_a_reader_refused_at_the_gate_raises(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]

    async def serve_one_refusal() -> None:
        ledger = LedgerProcess(settings, own_uid=os.getuid() + 1)
        server = await ledger.listen()
        try:
            def read() -> None:
                with SocketReader(connect(socket_path(settings.data_dir), 10.0)) as reader:
                    reader.query("SELECT 1")
            with pytest.raises(LedgerQueryError, match="permission denied"):
                await asyncio.to_thread(read)
        finally:
            server.close()

    asyncio.run(serve_one_refusal())
