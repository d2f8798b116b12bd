"""The spill: segment append and read, a full disk, torn lines, rotation with carry-forward, group commit, ack logs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.callrow import micros
from gateway.ledger.commit import GroupCommit
from gateway.ledger.instance import create_instance, other_instances, remove_instance, try_lock
from gateway.ledger.journal import Journal
from gateway.ledger.replay import close_unfinished, scan_instance
from gateway.ledger.segment import Segment
from gateway.ledger.spill import (
    FINISH,
    START,
    AckState,
    Batch,
    SegmentReader,
    ack_path,
    append_ack,
    encode,
    read_acks,
    records,
    segment_numbers,
    segment_path,
    trim_torn_tail,
)
from tests.unit.helpers import ledger_journal

T0 = 1_700_000_000_000_000


def start(i: int) -> dict[str, Any]:
    return {"request_id": f"req-{i}", "received_at": T0 + i, "tenant_id": "t1", "endpoint": "chat"}


def finish(i: int) -> dict[str, Any]:
    return dict(start(i), finished_at=T0 + i + 500, status="ok", cost_usd="0.000100000")


def test_records_round_trip(tmp_path: Path) -> None:
    segment = Segment.create(tmp_path, 1, b"")
    segment.append(encode(START, start(1)))
    segment.append(encode(FINISH, finish(1)))
    os.close(segment.fd)
    assert segment.path.name == "000000000001.seg"
    assert segment.size == segment.path.stat().st_size
    assert [(kind, row["request_id"]) for kind, row, _ in records(segment.path)] == [("s", "req-1"), ("f", "req-1")]


def test_reader_batches_finish_rows_only(tmp_path: Path) -> None:
    segment = Segment.create(tmp_path, 1, b"")
    for i in range(5):
        segment.append(encode(START, start(i)) + encode(FINISH, finish(i)))
    reader = SegmentReader(segment.path, 0)  # the segment is still live
    first = Batch(0, 0)
    assert reader.fill(first, 3) is False
    second = Batch(reader.offset, reader.offset)
    assert reader.fill(second, 3) is True
    reader.close()
    assert [orjson.loads(r)["request_id"] for r in first.rows] == ["req-0", "req-1", "req-2"]
    assert [orjson.loads(r)["request_id"] for r in second.rows] == ["req-3", "req-4"]
    assert second.start == first.end and second.end == segment.size
    os.close(segment.fd)


def test_reader_follows_a_live_segment_past_where_it_caught_up(tmp_path: Path) -> None:
    segment = Segment.create(tmp_path, 1, encode(START, start(0)))
    reader = SegmentReader(segment.path, 0)
    batch = Batch(0, 0)
    assert reader.fill(batch, 100) is True and not batch.rows and reader.offset == segment.size
    segment.append(encode(FINISH, finish(0)))
    segment.append(encode(START, start(1)) + encode(FINISH, finish(1)))
    assert reader.fill(batch, 100) is True  # read again, not served from what it saw before
    assert [orjson.loads(r)["request_id"] for r in batch.rows] == ["req-0", "req-1"]
    assert batch.end == reader.offset == segment.size
    reader.close()
    os.close(segment.fd)


def test_torn_last_line_is_left_until_complete(tmp_path: Path) -> None:
    path = tmp_path / "000000000001.seg"
    whole, torn = encode(FINISH, finish(1)), encode(FINISH, finish(2))
    path.write_bytes(whole + torn[:10])
    reader = SegmentReader(path, 0)
    batch = Batch(0, 0)
    assert reader.fill(batch, 100) is True
    assert [orjson.loads(r)["request_id"] for r in batch.rows] == ["req-1"] and reader.offset == len(whole)
    with path.open("ab") as handle:
        handle.write(torn[10:])
    assert reader.fill(batch, 100) is True
    reader.close()
    assert [orjson.loads(r)["request_id"] for r in batch.rows] == ["req-1", "req-2"]
    assert batch.end == len(whole) + len(torn)


def test_garbage_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "000000000001.seg"
    path.write_bytes(encode(FINISH, finish(1)) + b"not json\n" + encode(FINISH, finish(2)))
    reader = SegmentReader(path, 0)
    batch = Batch(0, 0)
    reader.fill(batch, 100)
    reader.close()
    assert [orjson.loads(r)["request_id"] for r in batch.rows] == ["req-1", "req-2"]
    assert reader.bad_lines == 1


def test_trim_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "000000000001.seg"
    whole = encode(START, start(1))
    path.write_bytes(whole + b'{"t":"f","r":{"requ')
    assert trim_torn_tail(path) == len(whole)
    assert path.read_bytes() == whole
    assert trim_torn_tail(path) == len(whole)
    path.write_bytes(whole + b'{"t":"f","r":{"requ' + bytes(200_000))  # blocks a power cut left unwritten
    assert trim_torn_tail(path) == len(whole) and path.read_bytes() == whole


def test_ack_log_states(tmp_path: Path) -> None:
    ack = ack_path(segment_path(tmp_path, 7))
    assert ack.name == "000000000007.ack"
    assert read_acks(ack) == AckState(0, None)
    append_ack(ack, "pending 0 100", True)
    assert read_acks(ack) == AckState(0, (0, 100))
    append_ack(ack, "acked 100", False)
    append_ack(ack, "pending 100 250", True)
    assert read_acks(ack) == AckState(100, (100, 250))
    with ack.open("ab") as handle:
        handle.write(b"acked 25")  # torn: the pending batch stands
    assert read_acks(ack) == AckState(100, (100, 250))


def journal_for(tmp_path: Path, segment_bytes: int) -> Journal:
    return ledger_journal(tmp_path, ledger_segment_bytes=segment_bytes)


def test_rotation_carries_forward_calls_in_flight(tmp_path: Path) -> None:
    journal = journal_for(tmp_path, 1)  # rotate as soon as a segment has grown past what it carried
    for i in range(3):
        journal.start_call(start(i))
    journal.finish_call(finish(1))
    journal.start_call(start(3))
    assert journal.sync_now() == 0
    directory = journal.directory
    assert directory is not None
    per_segment = [
        [(kind, row["request_id"]) for kind, row, _ in records(segment_path(directory, n))]
        for n in segment_numbers(directory)
    ]
    assert per_segment == [
        [("s", "req-0")],
        [("s", "req-0"), ("s", "req-1")],
        [("s", "req-0"), ("s", "req-1"), ("s", "req-2"), ("f", "req-1")],
        # req-1 finished in an earlier segment: only the calls still in flight are carried forward.
        [("s", "req-0"), ("s", "req-2"), ("s", "req-3")],
    ]
    assert set(journal.in_flight) == {"req-0", "req-2", "req-3"}
    assert journal.position() == (4, segment_path(directory, 4).stat().st_size)


def test_rotation_stays_amortised_when_calls_in_flight_outgrow_a_segment(tmp_path: Path) -> None:
    journal = journal_for(tmp_path, 200)
    for i in range(200):
        journal.start_call(start(i))
    assert journal.directory is not None
    assert len(segment_numbers(journal.directory)) <= 10  # not one segment per append


def test_failed_append_keeps_row_for_retry(tmp_path: Path) -> None:
    journal = journal_for(tmp_path, 1)  # the next append needs a new segment
    journal.start_call(start(1))
    assert journal.directory is not None
    journal.directory.rename(tmp_path / "moved")  # and it cannot be created
    journal.finish_call(finish(1))
    assert journal.broken and not journal.ok
    assert [request_id for request_id, _ in journal.retry] == ["req-1"]
    assert "req-1" in journal.in_flight  # still carried forward until its finish is on disk


def test_dead_instance_scan_and_crash_rows(tmp_path: Path) -> None:
    directory, lock = create_instance(tmp_path, "b" * 32)
    path = segment_path(directory, 1)
    lines = [encode(START, start(i)) for i in range(4)] + [encode(FINISH, finish(0)), encode(FINISH, finish(2))]
    path.write_bytes(b"".join(lines) + b'{"t":"f"')
    assert other_instances(tmp_path, "c" * 32) == [directory]
    assert try_lock(directory) is None  # held: a live writer
    os.close(lock)
    scan = close_unfinished(directory)
    assert scan.crashed == 2 and scan.rows == 4
    crashed = [row for kind, row, _ in records(path) if kind == FINISH and row["status"] == "gateway_crash"]
    assert sorted(r["request_id"] for r in crashed) == ["req-1", "req-3"]
    assert {micros(r["finished_at"]) for r in crashed} == {T0 + 2 + 500}  # the latest time in the records
    again = close_unfinished(directory)  # idempotent: the crash rows count as finishes
    assert again.crashed == 0 and scan_instance(directory).unfinished == {}
    remove_instance(directory)
    assert not directory.exists()


def test_encode_keeps_decimals_as_strings() -> None:
    from decimal import Decimal

    record = orjson.loads(encode(FINISH, {"request_id": "x", "cost_usd": Decimal("0.000000001")}))
    assert record == {"t": "f", "r": {"request_id": "x", "cost_usd": "0.000000001"}}


def test_spilled_finish_rows_are_insert_ready(tmp_path: Path) -> None:
    # A finish record's row is cut out of its line as it is and sent to ClickHouse as a JSONEachRow line:
    # its timestamps must already be exact decimal seconds.
    row = {"request_id": "r", "received_at": 1_795_685_727_000_001, "finished_at": 1_795_685_727_123_456}
    path = tmp_path / "000000000001.seg"
    path.write_bytes(encode(FINISH, row))
    batch, reader = Batch(0, 0), SegmentReader(path, 0)
    reader.fill(batch, 10)
    reader.close()
    (line,) = batch.rows
    assert orjson.loads(line) == {"request_id": "r", "received_at": "1795685727.000001",
                                  "finished_at": "1795685727.123456"}



_FILL_UNTIL_FULL = """
import os, resource, signal, sys
from pathlib import Path
from gateway.ledger.segment import Segment
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
segment = Segment.create(Path(sys.argv[1]), 1, b"")
record = b'{"t":"s","r":{"request_id":"' + b"x" * 100 + b'"}}\\n'
try:
    while True:
        segment.append(record)
except OSError as exc:
    print(exc.errno, segment.size, len(record))
"""


def test_a_full_disk_fails_the_append_and_leaves_only_whole_records(tmp_path: Path) -> None:
    # A file-size limit stands in for a full disk: the write that crosses it is cut short, as ENOSPC would.
    done = subprocess.run([sys.executable, "-c", _FILL_UNTIL_FULL, str(tmp_path), "1000"],
                          capture_output=True, text=True, check=True)
    code, size, length = map(int, done.stdout.split())
    assert code == errno.ENOSPC and size == (1000 // length) * length
    data = segment_path(tmp_path, 1).read_bytes()
    assert len(data) == size and data.endswith(b"\n")  # the torn record was cut off again
    assert len(list(records(segment_path(tmp_path, 1)))) == size // length


def test_a_write_the_disk_refuses_is_an_error_and_nothing_is_counted(tmp_path: Path) -> None:
    segment = Segment.create(tmp_path, 1, encode(START, start(1)))
    before = segment.size
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, segment.fd)  # the disk fills up under the live segment
    os.close(full)
    with pytest.raises(OSError) as refused:
        segment.append(encode(FINISH, finish(1)))
    assert refused.value.errno == errno.ENOSPC and segment.size == before
    os.close(segment.fd)


def test_group_commit_syncs_a_sealed_segment_once_more_then_closes_it(tmp_path: Path) -> None:
    errors: list[int] = []
    commit = GroupCommit(tmp_path, 3600.0, errors.append)  # rounds only when asked, here
    first = Segment.create(tmp_path, 1, encode(START, start(1)))
    commit.follow(first.fd)
    assert commit.dirty and commit.sync() == 0 and not commit.dirty
    second = Segment.create(tmp_path, 2, b"")
    commit.seal(first.fd)
    commit.follow(second.fd)
    assert commit.sync() == 0
    with pytest.raises(OSError):
        os.fstat(first.fd)  # closed after its last fdatasync
    os.fstat(second.fd)  # the live one stays open
    assert commit.close() == 0 and errors == []
    os.close(second.fd)
