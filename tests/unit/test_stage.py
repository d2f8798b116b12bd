"""Staged segments: appends land in the staged copy, a syncer copies them to disk, recovery copies what is left."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.ledger.journal import Journal
from gateway.ledger.segment import Segment
from gateway.ledger.spill import FINISH, START, encode, records, segment_path
from gateway.ledger.stage import staged, unstage
from gateway.ledger.syncer import SpillSyncer
from tests.unit.helpers import ledger_journal

T0 = 1_700_000_000_000_000


def start(i: int) -> dict[str, object]:
    return {"request_id": f"req-{i}", "received_at": T0 + i, "tenant_id": "t1", "endpoint": "chat"}


def finish(i: int) -> dict[str, object]:
    return dict(start(i), finished_at=T0 + i + 500, status="ok", cost_usd="0.000100000")


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    directory, stage = tmp_path / "spill", tmp_path / "stage"
    directory.mkdir()
    stage.mkdir()
    return directory, stage


def ids(path: Path) -> list[tuple[str, str]]:
    return [(kind, str(row["request_id"])) for kind, row, _ in records(path)]


def test_staged_appends_reach_the_disk_file_at_group_commit(tmp_path: Path) -> None:
    directory, stage = dirs(tmp_path)
    segment = Segment.create(directory, 1, encode(START, start(1)), 4096, stage=stage)
    segment.append(encode(FINISH, finish(1)))
    assert ids(segment.path) == [] and staged(stage, 1)  # only in shared memory so far
    syncer = SpillSyncer(directory, lambda: 1, 0.01, stage)
    assert syncer.sync(1) == 0
    assert ids(segment.path) == [("s", "req-1"), ("f", "req-1")]
    segment.append(encode(START, start(2)))
    assert syncer.sync(1) == 0 and ids(segment.path)[-1] == ("s", "req-2")
    second = Segment.create(directory, 2, b"", 4096, stage=stage)
    segment.append(encode(FINISH, finish(2)))
    os.close(segment.seal())
    assert syncer.sync(2) == 0  # sealed: its last copy, then the staged copy goes
    assert ids(segment.path)[-1] == ("f", "req-2") and segment.path.stat().st_size == segment.size
    assert not staged(stage, 1) and staged(stage, 2) and syncer.tracked == [2]
    syncer.close()
    os.close(second.seal())


def test_two_syncers_copying_the_same_segment_agree(tmp_path: Path) -> None:
    # The gateway's syncer and a new ingest process may both copy while one hands over to the other.
    directory, stage = dirs(tmp_path)
    segment = Segment.create(directory, 1, b"", 1 << 16, stage=stage)
    first, second = (SpillSyncer(directory, lambda: 1, 0.01, stage) for _ in range(2))
    for i in range(50):
        segment.append(encode(START, start(i)) + encode(FINISH, finish(i)))
        assert (first if i % 3 else second).sync(1) == 0
    assert second.sync(1) == 0 and first.sync(1) == 0
    with segment.path.open("rb") as disk, segment_path(stage, 1).open("rb") as copy:
        assert disk.read(segment.size) == copy.read(segment.size)
    assert len(ids(segment.path)) == 100
    first.close()
    second.close()
    os.close(segment.seal())


def test_recovery_copies_what_a_killed_writer_left_staged(tmp_path: Path) -> None:
    directory, root = dirs(tmp_path)
    stage = root / "dead-writer"
    stage.mkdir()
    segment = Segment.create(directory, 1, b"", 4096, stage=stage)
    segment.append(encode(START, start(1)) + encode(FINISH, finish(1)))
    syncer = SpillSyncer(directory, lambda: 1, 0.01, stage)
    assert syncer.sync(1) == 0
    segment.append(encode(START, start(2)))  # never copied: the process is killed here
    syncer.close()
    segment.unmap()
    for fd in (segment.fd, segment.staged_fd):
        assert fd is not None
        os.close(fd)
    unstage(directory, stage)
    assert ids(segment.path) == [("s", "req-1"), ("f", "req-1"), ("s", "req-2")]
    assert not stage.exists() and not root.exists()  # the shared root too: it was the last writer there


def journal_for(tmp_path: Path, stage_dir: Path) -> Journal:
    return ledger_journal(tmp_path, ledger_stage_dir=stage_dir, ledger_segment_bytes=1)


def test_a_segment_stays_live_for_ingest_until_its_staged_copy_is_on_disk(tmp_path: Path) -> None:
    journal = journal_for(tmp_path, tmp_path / "stage")
    journal.start_call(start(1))
    journal.start_call(start(2))  # past the 1-byte limit: segment 2 takes over
    assert journal.live(1) and journal.live(2)  # 1 is sealed, but not all of it is on disk yet
    assert journal.sync_now() == 0
    assert not journal.live(1) and journal.live(2)
    assert journal.directory is not None
    assert ids(segment_path(journal.directory, 1)) == [("s", "req-1")]
    assert ids(segment_path(journal.directory, 2)) == [("s", "req-1"), ("s", "req-2")]
    journal.release(remove=False)


def test_an_unusable_stage_falls_back_to_mapping_the_disk_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    journal = journal_for(tmp_path, blocker)
    assert journal.stage is None
    journal.start_call(start(1))
    assert journal.directory is not None and journal.ok
    assert ids(segment_path(journal.directory, 1)) == [("s", "req-1")]  # on disk at once, through the mapping
    journal.release(remove=False)


def test_a_stage_root_others_can_write_is_not_used(tmp_path: Path) -> None:
    root = tmp_path / "stage"
    root.mkdir()
    root.chmod(0o777)  # as if another user had made it first, open to all
    journal = journal_for(tmp_path, root / "netra")
    assert journal.stage is not None  # a private root of our own under it is fine
    journal.release(remove=False)
    (root / "other").mkdir()
    (root / "other").chmod(0o777)
    journal = journal_for(tmp_path / "second", root / "other")
    assert journal.stage is None  # not private: the writer maps its disk files instead
    journal.release(remove=False)
