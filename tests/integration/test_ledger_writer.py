"""The ledger writer against the real embedded ClickHouse: exactly one row per call through outages and crashes."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from prometheus_client import CollectorRegistry

from core.clickhouse import ClickHouseStore
from core.errors import ServiceUnavailable
from core.settings import Settings
from gateway.ledger import LedgerWriter, NullLedgerWriter
from gateway.ledger.spill import ack_path, read_acks, segment_path

T = TypeVar("T")
T0 = int(time.time() * 1_000_000)


def start_row(i: int, prefix: str = "req") -> dict[str, Any]:
    return {
        "request_id": f"{prefix}-{i:06d}", "received_at": T0 + i, "tenant_id": "tenant-1", "tenant_name": "Acme",
        "key_id": "key-1", "endpoint": "chat.completions", "requested_model": "gpt-4o-mini",
        "served_model": "gpt-4o-mini", "provider": "openai", "stream": False, "prompt_chars": 120, "tags": ["a"],
    }


def finish_row(i: int, prefix: str = "req") -> dict[str, Any]:
    return dict(
        start_row(i, prefix), finished_at=T0 + i + 1_000, status="ok", http_status=200, prompt_tokens=30,
        completion_tokens=12, cost_usd="0.000012500", baseline_cost_usd="0.000012500", savings_usd="0",
        latency_ms=1.0, upstream_attempts=1,
    )


class FlakySink:
    """The real store, with ClickHouse made unreachable (`down`) or made to lose one acknowledgement."""

    def __init__(self, store: ClickHouseStore) -> None:
        self.store = store
        self.down = False
        self.lose_acks = 0
        self.attempts: list[int] = []
        self.tokens: list[str] = []
        self.delivered: list[str] = []

    def insert_rows(self, rows: Sequence[bytes], token: str) -> None:
        self.attempts.append(len(rows))
        if self.down:
            raise ConnectionError("ClickHouse is unreachable")
        self.store.insert_rows(rows, token)
        self.tokens.append(token)
        self.delivered.extend(orjson.loads(row)["request_id"] for row in rows)
        if self.lose_acks:
            self.lose_acks -= 1
            raise ConnectionError("connection reset after the insert")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.store.run(fn, *args)


def tuned(settings: Settings, **changes: Any) -> Settings:
    base: dict[str, Any] = {"ledger_flush_interval": 0.05, "ledger_batch_rows": 500}
    return settings.model_copy(update=base | changes)


def counts(store: ClickHouseStore) -> dict[str, int]:
    rows = store.query("SELECT status, count() FROM llm_calls GROUP BY status")
    total, unique = store.query("SELECT count(), uniqExact(request_id) FROM llm_calls")[0]
    return {**{status: n for status, n in rows}, "total": total, "unique": unique}


def metric(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name)
    assert value is not None, name
    return value


def segments(settings: Settings) -> list[Path]:
    return sorted(settings.spill_dir.glob("*/*.seg"))


async def record(writer: LedgerWriter, ids: range, prefix: str = "req") -> None:
    for i in ids:
        writer.begin(start_row(i, prefix))
        writer.finish(finish_row(i, prefix))


async def test_five_thousand_calls_become_five_thousand_rows(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    settings = tuned(settings, ledger_segment_bytes=256 * 1024, ledger_batch_rows=1000)
    registry = CollectorRegistry()
    writer = LedgerWriter(settings, clickhouse_store, registry)
    await writer.start()
    await record(writer, range(5000))
    await writer.drain()
    assert counts(clickhouse_store) == {"ok": 5000, "total": 5000, "unique": 5000}
    assert metric(registry, "netra_ledger_rows_written_total") == 5000
    assert metric(registry, "netra_ledger_backlog_rows") == 0
    assert metric(registry, "netra_ledger_backlog_bytes") == 0
    assert len(segments(settings)) == 1  # only the live segment is left; the rotated ones were deleted
    await writer.close(5)
    assert list(settings.spill_dir.iterdir()) == []


async def test_clickhouse_outage_holds_rows_on_disk_then_replays_in_order(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    settings = tuned(settings, ledger_batch_rows=50, ledger_segment_bytes=64 * 1024)
    registry = CollectorRegistry()
    sink = FlakySink(clickhouse_store)
    writer = LedgerWriter(settings, sink, registry)
    await writer.start()
    sink.down = True
    for chunk in range(10):
        await record(writer, range(chunk * 100, chunk * 100 + 100))
        await asyncio.sleep(0.05)  # requests keep being accepted while ingest retries
    assert writer.healthy
    assert metric(registry, "netra_ledger_backlog_rows") == 1000
    assert writer.backlog()[0] == 1000 and writer.backlog()[1] > 0
    assert metric(registry, "netra_ledger_backlog_bytes") > 0
    assert metric(registry, "netra_ledger_oldest_unflushed_seconds") > 0
    assert metric(registry, "netra_ledger_insert_errors_total") >= 2
    assert max(sink.attempts) <= 50  # one batch in memory, the rest waits on disk
    assert len(segments(settings)) > 1
    sink.down = False
    await asyncio.wait_for(writer.drain(), 20)
    assert counts(clickhouse_store) == {"ok": 1000, "total": 1000, "unique": 1000}
    assert sink.delivered == [f"req-{i:06d}" for i in range(1000)]  # in order, each once
    assert metric(registry, "netra_ledger_backlog_rows") == 0
    assert metric(registry, "netra_ledger_oldest_unflushed_seconds") == 0
    await writer.close(5)


async def test_abandoned_writer_is_replayed_with_crash_rows(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    settings = tuned(settings, ledger_batch_rows=25, ledger_segment_bytes=16 * 1024)
    first = LedgerWriter(settings, clickhouse_store, CollectorRegistry())
    await first.start()
    for i in range(100):
        first.begin(start_row(i))
    for i in range(60):
        first.finish(finish_row(i))
    await asyncio.sleep(0.02)  # let ingest get part-way, so some batches are acked and some are not
    await first.abandon()
    assert (settings.spill_dir / first.instance).is_dir()
    second = LedgerWriter(settings, clickhouse_store, CollectorRegistry())
    await second.start()
    await asyncio.wait_for(second.drain(), 20)
    assert counts(clickhouse_store) == {"ok": 60, "gateway_crash": 40, "total": 100, "unique": 100}
    crashed = clickhouse_store.query("SELECT min(request_id), max(request_id) FROM llm_calls WHERE status != 'ok'")
    assert crashed == [("req-000060", "req-000099")]
    assert not (settings.spill_dir / first.instance).exists()
    await second.close(5)


async def test_lost_acknowledgement_is_resent_without_duplicates(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    settings = tuned(settings, ledger_batch_rows=100)
    sink = FlakySink(clickhouse_store)
    sink.lose_acks = 1
    writer = LedgerWriter(settings, sink, CollectorRegistry())
    await writer.start()
    await record(writer, range(300))
    await asyncio.wait_for(writer.drain(), 20)
    assert sink.tokens[0] == sink.tokens[1]  # the same batch, the same token
    assert counts(clickhouse_store) == {"ok": 300, "total": 300, "unique": 300}
    await writer.close(5)


async def test_a_batch_resent_after_a_failure_that_landed_counts_once(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    settings = tuned(settings, ledger_batch_rows=100)
    sink = FlakySink(clickhouse_store)
    sink.lose_acks = 2  # the insert lands, then the call fails (a timeout, a reset): twice
    registry = CollectorRegistry()
    writer = LedgerWriter(settings, sink, registry)
    await writer.start()
    await record(writer, range(300))
    await asyncio.wait_for(writer.drain(), 20)
    assert len(sink.delivered) > 300  # some batches really were sent more than once
    assert counts(clickhouse_store) == {"ok": 300, "total": 300, "unique": 300}
    assert metric(registry, "netra_ledger_rows_written_total") == 300
    assert metric(registry, "netra_ledger_insert_errors_total") == 2
    await writer.close(5)


async def test_pending_batch_on_disk_is_resent_after_restart(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    settings = tuned(settings, ledger_batch_rows=100)
    sink = FlakySink(clickhouse_store)
    sink.lose_acks = 1_000_000  # every insert lands, no acknowledgement ever comes back
    first = LedgerWriter(settings, sink, CollectorRegistry())
    await first.start()
    await record(writer=first, ids=range(250))
    while len(sink.tokens) < 2:
        await asyncio.sleep(0.01)
    await first.abandon()
    pending = read_acks(ack_path(segment_path(settings.spill_dir / first.instance, 1))).pending
    assert pending is not None and pending[0] == 0  # sent, never acknowledged
    second = LedgerWriter(settings, clickhouse_store, CollectorRegistry())
    await second.start()
    await asyncio.wait_for(second.drain(), 20)
    assert counts(clickhouse_store) == {"ok": 250, "total": 250, "unique": 250}
    await second.close(5)


async def test_unwritable_spill_dir_refuses_calls(settings: Settings, clickhouse_store: ClickHouseStore) -> None:
    settings.data_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.data_dir.write_text("a file where the data dir should be")
    registry = CollectorRegistry()
    writer = LedgerWriter(settings, clickhouse_store, registry)
    await writer.start()
    assert not writer.healthy
    with pytest.raises(ServiceUnavailable) as refused:
        writer.begin(start_row(1))
    assert refused.value.code == "logging_unavailable" and refused.value.headers == {"retry-after": "5"}
    assert metric(registry, "netra_ledger_spill_errors_total") >= 1
    await writer.close(0.5)


async def test_failed_write_refuses_calls_then_heals(settings: Settings, clickhouse_store: ClickHouseStore) -> None:
    settings = tuned(settings, ledger_segment_bytes=1)  # every append past the first needs a new segment
    writer = LedgerWriter(settings, clickhouse_store, CollectorRegistry())
    await writer.start()
    writer.begin(start_row(1))
    directory = writer._journal.directory
    assert directory is not None
    directory.rename(directory.with_name("moved"))  # the disk "fails": no new segment can be created
    writer.finish(finish_row(1))  # never raises: kept in memory
    assert not writer.healthy
    with pytest.raises(ServiceUnavailable) as refused:
        writer.begin(start_row(2))
    assert refused.value.code == "logging_unavailable"
    directory.with_name("moved").rename(directory)
    for _ in range(200):
        if writer.healthy:
            break
        await asyncio.sleep(0.01)
    assert writer.healthy  # moved to a fresh segment and appended the held row
    await record(writer, range(2, 5))
    await asyncio.wait_for(writer.drain(), 20)
    assert counts(clickhouse_store) == {"ok": 4, "total": 4, "unique": 4}
    await writer.close(5)


async def test_a_full_disk_refuses_calls_then_heals_on_a_fresh_segment(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    registry = CollectorRegistry()
    writer = LedgerWriter(tuned(settings), clickhouse_store, registry)
    await writer.start()
    writer.begin(start_row(1))
    segment = writer._journal.segment
    assert segment is not None
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, segment.fd)  # the disk fills up under the live segment: every write to it is ENOSPC
    os.close(full)
    writer.finish(finish_row(1))  # never raises: kept in memory, then appended to a fresh segment
    assert not writer.healthy
    with pytest.raises(ServiceUnavailable) as refused:
        writer.begin(start_row(2))
    assert refused.value.code == "logging_unavailable"
    async with asyncio.timeout(20):
        while not writer.healthy:
            await asyncio.sleep(0.01)
    await record(writer, range(3, 6))
    await asyncio.wait_for(writer.drain(), 20)
    assert counts(clickhouse_store) == {"ok": 4, "total": 4, "unique": 4}
    assert metric(registry, "netra_ledger_spill_errors_total") >= 1
    await writer.close(5)


async def test_close_flushes_everything(settings: Settings, clickhouse_store: ClickHouseStore) -> None:
    writer = LedgerWriter(tuned(settings, ledger_flush_interval=30.0), clickhouse_store, CollectorRegistry())
    await writer.start()
    await record(writer, range(700))
    await writer.close(10)
    assert counts(clickhouse_store) == {"ok": 700, "total": 700, "unique": 700}
    assert list(settings.spill_dir.iterdir()) == []
    with pytest.raises(ServiceUnavailable) as refused:
        writer.begin(start_row(1000))
    assert refused.value.code == "shutting_down"


async def test_close_with_clickhouse_down_leaves_the_spill_for_the_next_start(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    settings = tuned(settings, ledger_batch_rows=100)
    sink = FlakySink(clickhouse_store)
    sink.down = True
    first = LedgerWriter(settings, sink, CollectorRegistry())
    await first.start()
    await record(first, range(400))
    started = time.monotonic()
    await first.close(0.3)
    assert time.monotonic() - started < 2
    assert segments(settings)
    second = LedgerWriter(settings, clickhouse_store, CollectorRegistry())
    await second.start()
    await asyncio.wait_for(second.drain(), 20)
    await second.close(5)
    assert counts(clickhouse_store) == {"ok": 400, "total": 400, "unique": 400}
    assert list(settings.spill_dir.iterdir()) == []


async def test_live_writer_directory_is_left_alone(settings: Settings, clickhouse_store: ClickHouseStore) -> None:
    settings = tuned(settings)
    first = LedgerWriter(settings, FlakySink(clickhouse_store), CollectorRegistry())
    await first.start()
    first.begin(start_row(1))
    second = LedgerWriter(settings, clickhouse_store, CollectorRegistry())
    await second.start()
    await asyncio.wait_for(second.drain(), 20)
    assert (settings.spill_dir / first.instance).is_dir()
    assert counts(clickhouse_store)["total"] == 0  # the first writer's call is in flight, not crashed
    first.finish(finish_row(1))
    await first.close(5)
    await second.close(5)
    assert counts(clickhouse_store) == {"ok": 1, "total": 1, "unique": 1}


async def test_null_writer_records_nothing() -> None:
    ledger = NullLedgerWriter()
    await ledger.start()
    ledger.begin(start_row(1))
    ledger.finish(finish_row(1))
    await ledger.drain()
    assert ledger.healthy and ledger.backlog() == (0, 0)
    await ledger.close(1)


async def test_a_row_clickhouse_refuses_is_set_aside_and_the_rest_still_lands(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    settings = tuned(settings, ledger_batch_rows=200)
    registry = CollectorRegistry()
    writer = LedgerWriter(settings, clickhouse_store, registry)
    await writer.start()
    await record(writer, range(150))
    writer.begin(start_row(150))
    writer.finish({**finish_row(150), "http_status": "not a number"})  # a row no UInt16 column can take
    await record(writer, range(151, 300))
    async with asyncio.timeout(60):  # a refused row must not hold the rows behind it
        await writer.drain()
    assert counts(clickhouse_store) == {"ok": 299, "total": 299, "unique": 299}
    [line] = (settings.spill_dir / "rejected.jsonl").read_bytes().splitlines()
    rejected = orjson.loads(line)
    assert orjson.loads(rejected["row"])["request_id"] == "req-000150" and "Code: 27" in rejected["error"]
    assert metric(registry, "netra_ledger_rows_rejected_total") == 1
    assert metric(registry, "netra_ledger_rows_written_total") == 299
    assert metric(registry, "netra_ledger_backlog_rows") == 0
    await writer.close(5)
