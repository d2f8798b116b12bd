"""The spill's file format: segment append and read, torn lines, rotation with carry-forward, ack logs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from core.callrow import micros
from gateway.ledger.instance import create_instance, other_instances, remove_instance, try_lock
from gateway.ledger.journal import Journal
from gateway.ledger.replay import close_unfinished, scan_instance
from gateway.ledger.segment import HEADROOM, Segment
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
from gateway.ledger.syncer import SpillSyncer
from tests.unit.helpers import ledger_journal

T0 = 1_700_000_000_000_000


def start(i: int) -> dict[str, Any]:
    return {"request_id": f"req-{i}", "received_at": T0 + i, "tenant_id": "t1", "endpoint": "chat"}


def finish(i: int) -> dict[str, Any]:
    return dict(start(i), finished_at=T0 + i + 500, status="ok", cost_usd="0.000100000")


def test_records_round_trip(tmp_path: Path) -> None:
    segment = Segment.create(tmp_path, 1, b"", 4096)
    assert segment.path.stat().st_size == 4096 + HEADROOM  # reserved ahead, so a full disk fails here
    segment.append(encode(START, start(1)))
    segment.append(encode(FINISH, finish(1)))
    os.close(segment.seal())
    assert segment.path.name == "000000000001.seg"
    assert segment.size == segment.path.stat().st_size  # sealed: cut to its data
    assert [(kind, row["request_id"]) for kind, row, _ in records(segment.path)] == [("s", "req-1"), ("f", "req-1")]


def test_reader_batches_finish_rows_only(tmp_path: Path) -> None:
    segment = Segment.create(tmp_path, 1, b"", 4096)
    for i in range(5):
        segment.append(encode(START, start(i)) + encode(FINISH, finish(i)))
    reader = SegmentReader(segment.path, 0)  # the segment is still live: its reserved tail is zeros
    first = Batch(0, 0)
    assert reader.fill(first, 3) is False
    second = Batch(reader.offset, reader.offset)
    assert reader.fill(second, 3) is True
    reader.close()
    assert [orjson.loads(r)["request_id"] for r in first.rows] == ["req-0", "req-1", "req-2"]
    assert [orjson.loads(r)["request_id"] for r in second.rows] == ["req-3", "req-4"]
    assert second.start == first.end and second.end == segment.size
    os.close(segment.seal())


def test_reader_follows_a_live_segment_past_where_it_caught_up(tmp_path: Path) -> None:
    segment = Segment.create(tmp_path, 1, encode(START, start(0)), 4096)
    reader = SegmentReader(segment.path, 0)
    batch = Batch(0, 0)
    assert reader.fill(batch, 100) is True and not batch.rows and reader.offset == segment.size
    segment.append(encode(FINISH, finish(0)))
    segment.append(encode(START, start(1)) + encode(FINISH, finish(1)))
    assert reader.fill(batch, 100) is True  # read again, not served from what it saw before
    assert [orjson.loads(r)["request_id"] for r in batch.rows] == ["req-0", "req-1"]
    assert batch.end == reader.offset == segment.size
    reader.close()
    os.close(segment.seal())


def test_a_copy_in_progress_is_not_read_until_it_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "000000000001.seg"
    whole, copying = encode(FINISH, finish(1)), encode(FINISH, finish(2))
    # A copy may make its last bytes (the newline) visible before the middle ones: a zero hole.
    path.write_bytes(whole + copying[:10] + bytes(20) + copying[30:] + bytes(4096))
    reader = SegmentReader(path, 0)
    batch = Batch(0, 0)
    assert reader.fill(batch, 100) is True and reader.offset == len(whole)
    with path.open("r+b") as handle:
        handle.seek(len(whole) + 10)
        handle.write(copying[10:30])
    assert reader.fill(batch, 100) is True
    reader.close()
    assert [orjson.loads(r)["request_id"] for r in batch.rows] == ["req-1", "req-2"]


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
    path.write_bytes(whole + b'{"t":"f","r":{"requ' + bytes(200_000))  # a killed writer's reserved tail
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
    assert journal.sync_now() == 0  # staged appends reach the disk files at group commit
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
    assert journal.position() == (4, len(segment_path(directory, 4).read_bytes().rstrip(b"\0")))


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


def test_the_syncer_follows_the_segments_until_the_gateway_moves_past_them(tmp_path: Path) -> None:
    directory = tmp_path / "instance"
    syncer = SpillSyncer(directory, lambda: 0, 0.01)
    assert syncer.sync(0) == 0 and syncer.tracked == []  # the gateway has not created its directory yet
    directory.mkdir()
    first = Segment.create(directory, 1, b"", 4096)
    first.append(encode(START, start(1)))
    assert syncer.sync(1) == 0 and syncer.tracked == [1]
    second = Segment.create(directory, 2, b"", 4096)
    os.close(first.seal())
    assert syncer.sync(2) == 0 and syncer.tracked == [2]  # segment 1 got its last fsync, after it was sealed
    assert syncer.sync(2) == 0 and syncer.tracked == [2]  # nothing new: no fsync, still followed
    segment_path(directory, 2).unlink()  # ingested and deleted
    third = Segment.create(directory, 3, b"", 4096)
    os.close(second.seal())
    assert syncer.sync(3) == 0 and syncer.tracked == [3]
    syncer.close()
    os.close(third.seal())


def test_a_record_bigger_than_the_room_left_moves_to_a_segment_made_for_it(tmp_path: Path) -> None:
    journal = journal_for(tmp_path, 4096)
    journal.start_call(start(1))
    huge = dict(start(2), tags=["x" * (2 * HEADROOM)])  # more than a segment reserves past its limit
    journal.start_call(huge)
    assert journal.sync_now() == 0
    assert journal.directory is not None and journal.segment is not None
    assert journal.segment.number == 2
    rows = [row for _, row, _ in records(segment_path(journal.directory, 2))]
    assert [row["request_id"] for row in rows] == ["req-1", "req-2"] and rows[1]["tags"] == huge["tags"]
