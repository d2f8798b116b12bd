"""Ledger throughput: calls per second through the writer into chDB, and a one-million-row backlog spilled and replayed.

Run with `python -m bench.ledger_bench [--rows N] [--backlog N]`. Everything lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore
from core.settings import Settings
from gateway.ledger import LedgerWriter

T = TypeVar("T")
T0 = int(time.time() * 1_000_000)
YIELD_EVERY = 500  # calls between yields to the loop, as a server interleaves requests with background work


def start_row(i: int) -> dict[str, Any]:
    """A start record the size the gateway writes."""
    return {
        "request_id": f"bench-{i:09d}-8f14e45fceea167a5a36dedd4bea2543", "received_at": T0 + i,
        "tenant_id": "5d41402abc4b2a76b9719d911017c592", "tenant_name": "Acme Corp",
        "key_id": "key_7b8b965ad4bca0e41ab51de7b31363a1", "endpoint": "chat.completions",
        "requested_model": "gpt-4o-mini", "served_model": "gpt-4o-mini", "provider": "openai", "stream": i % 3 == 0,
        "cache_outcome": "miss", "request_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "prompt_chars": 1840, "tags": ["team:search", "env:prod"], "upstream_attempts": 1, "prompt_tokens": 460,
    }


def finish_row(i: int) -> dict[str, Any]:
    """The ledger row of a finished call."""
    return dict(
        start_row(i), finished_at=T0 + i + 812_000, status="ok", http_status=200, error_code="",
        first_byte_at=T0 + i + 240_000, completion_tokens=212, cached_prompt_tokens=0, cache_write_tokens=0,
        tokens_estimated=False, cost_usd="0.000196200", baseline_cost_usd="0.000196200", savings_usd="0",
        savings_kind="", price_version="2025-06-01", latency_ms=812.0, ttft_ms=240.0,
    )


class DownSink:
    """ClickHouse unreachable: every insert fails."""

    def insert_rows(self, rows: Sequence[bytes], token: str) -> None:
        """Fail like a refused connection."""
        raise ConnectionError("ClickHouse is down")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run inline: the failure is immediate."""
        return fn(*args)


@dataclass
class Line:
    """One row of the results table."""

    phase: str
    rows: int
    seconds: float
    note: str = ""


async def record(writer: LedgerWriter, rows: int) -> float:
    """begin+finish `rows` calls; the seconds spent inside the writer's request-path calls."""
    spent = 0.0
    for i in range(rows):
        began = time.perf_counter()
        writer.begin(start_row(i))
        writer.finish(finish_row(i))
        spent += time.perf_counter() - began
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return spent


async def ingest_rate(settings: Settings, store: ClickHouseStore, rows: int) -> list[Line]:
    """Calls recorded while ingest runs, then drained into chDB."""
    writer = LedgerWriter(settings, store, CollectorRegistry())
    await writer.start()
    began = time.perf_counter()
    spent = await record(writer, rows)
    await writer.drain()
    total = time.perf_counter() - began
    await writer.close(10)
    per_call = spent / rows * 1e6
    return [
        Line("request path: begin+finish", rows, spent, f"{per_call:.1f} µs per call on the event loop"),
        Line("record + ingest into chDB", rows, total, "from first begin until all rows acknowledged"),
    ]


async def spill_and_replay(settings: Settings, store: ClickHouseStore, rows: int) -> list[Line]:
    """A backlog spilled while ClickHouse is down, then replayed by the next writer to start."""
    down = LedgerWriter(settings, DownSink(), CollectorRegistry())
    await down.start()
    began = time.perf_counter()
    spent = await record(down, rows)
    spilled = time.perf_counter() - began
    await down.close(0)
    size = sum(path.stat().st_size for path in settings.spill_dir.glob("*/*.seg"))
    replayer = LedgerWriter(settings, store, CollectorRegistry())
    began = time.perf_counter()
    await replayer.start()
    await replayer.drain()
    replayed = time.perf_counter() - began
    await replayer.close(10)
    return [
        Line("spill with ClickHouse down", rows, spilled,
             f"{size / 1e6:.0f} MB of segments; {spent / rows * 1e6:.1f} µs per call on the loop"),
        Line("replay backlog into chDB", rows, replayed, "crash recovery scan + batched inserts"),
    ]


def count(store: ClickHouseStore) -> tuple[int, int]:
    """Rows in llm_calls and distinct request ids."""
    total, unique = store.query("SELECT count(), uniqExact(request_id) FROM llm_calls")[0]
    return int(total), int(unique)


def show(lines: list[Line]) -> None:
    """Print the results table."""
    print(f"{'phase':<30} {'rows':>10} {'seconds':>9} {'rows/s':>10}  note")
    for line in lines:
        rate = line.rows / line.seconds if line.seconds else float("inf")
        print(f"{line.phase:<30} {line.rows:>10,} {line.seconds:>9.2f} {rate:>10,.0f}  {line.note}")


async def run(root: Path, rows: int, backlog: int) -> None:
    """Both benchmarks on a fresh data dir, checking that every row arrived exactly once."""
    settings = Settings(data_dir=root, clickhouse_url=f"chdb://{root}/clickhouse", _env_file=None)  # type: ignore[call-arg]
    store = ClickHouseStore.open(settings)
    upgrade_clickhouse(store)
    try:
        lines = await ingest_rate(settings, store, rows)
        assert count(store) == (rows, rows), count(store)
        store.command("TRUNCATE TABLE llm_calls")
        lines += await spill_and_replay(settings, store, backlog)
        assert count(store) == (backlog, backlog), count(store)
    finally:
        store.close()
    show(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="calls for the ingest-rate run")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="rows spilled while ClickHouse is down")
    args = parser.parse_args(argv)
    # The outage is deliberate here: its retry warnings would only clutter the table.
    logging.getLogger("netra.ledger").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="netra-ledger-bench-") as root:
        asyncio.run(run(Path(root), args.rows, args.backlog))


if __name__ == "__main__":
    main()
