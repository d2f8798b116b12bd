"""Analytics on ten million ledger rows: how long each core/analytics function takes, cold and warm.

Run with `python -m bench.analytics_bench [--rows 10000000] [--dir PATH]`. The rows (bench/analytics_data.py,
one month) are generated inside the embedded ClickHouse and inserted through llm_calls, so every materialized
view fills as in production; a --dir that already holds them is reused. Each analytic runs five times cold
(ClickHouse's mark and uncompressed caches dropped before each run; the OS page cache stays) and five times
warm; the medians are printed as a JSON table. Nothing is asserted: read the figures against the 1 s target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.analytics_data import load_sql
from core import analytics as an
from core.callrow import COLUMN_NAMES
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore, open_client

START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
DATABASE = "analytics_bench"
COLD = ("SYSTEM DROP MARK CACHE", "SYSTEM DROP UNCOMPRESSED CACHE")


def load(store: ClickHouseStore, rows: int) -> float | None:
    """Fill llm_calls unless it already holds `rows` rows; the seconds the load took (None: reused)."""
    if store.query("SELECT count() FROM llm_calls")[0][0] >= rows:
        return None
    began = time.perf_counter()
    store.command(load_sql(COLUMN_NAMES, START, END, rows))
    return time.perf_counter() - began


def biggest_tenant(store: ClickHouseStore) -> str:
    """The tenant with the most calls (its own filter reads the most rows)."""
    rows = store.query("SELECT tenant_id FROM llm_calls_daily GROUP BY tenant_id ORDER BY sum(requests) DESC LIMIT 1")
    return str(rows[0][0])


def call_cases(run: an.Run, tenant: str) -> dict[str, Callable[[], object]]:
    """The calls explorer: first pages under several filters, and a second page."""
    second = an.list_calls(run, an.CallFilter(), limit=500).next_cursor
    day = an.CallFilter(start=datetime(2026, 11, 14, tzinfo=UTC), end=datetime(2026, 11, 15, tzinfo=UTC),
                        savings_kind="route")  # fmt: skip
    mixed = an.CallFilter(model="claude-sonnet-4", tag="feature:qa", status="ok")
    return {
        "calls: newest 50": lambda: an.list_calls(run, an.CallFilter()),
        "calls: second page of 500": lambda: an.list_calls(run, an.CallFilter(), second, 500),
        "calls: one tenant": lambda: an.list_calls(run, an.CallFilter(tenant_id=tenant)),
        "calls: model + tag + status": lambda: an.list_calls(run, mixed),
        "calls: request id prefix": lambda: an.list_calls(run, an.CallFilter(request_id_prefix="req_ab12")),
        "calls: one day, savings kind": lambda: an.list_calls(run, day),
    }


def cases(run: an.Run, tenant: str) -> dict[str, Callable[[], object]]:
    """Every analytic over the month, for all tenants and for the biggest one."""
    month, hourly = an.Query(START, END), an.Query(START, END, granularity="hour")
    mine = an.Query(START, END, tenant_id=tenant)
    out: dict[str, Callable[[], object]] = {
        "timeseries day": lambda: an.timeseries(run, month),
        "timeseries hour": lambda: an.timeseries(run, hourly),
        "timeseries week, one tenant": lambda: an.timeseries(run, an.Query(START, END, tenant, "week")),
        "errors by code": lambda: an.errors_by_code(run, month),
        "cache hit rate": lambda: an.cache_hit_rate(run, month),
        "estimated cost and unpriced": lambda: an.cost_quality(run, month),
        "latency and ttft p50/p95/p99": lambda: an.latency(run, month),
        "latency, one tenant": lambda: an.latency(run, mine),
    }
    for by in an.DIMENSIONS:
        out[f"breakdown by {by}"] = lambda by=by: an.breakdown(run, month, by)  # type: ignore[misc]
    out["breakdown by key, one tenant"] = lambda: an.breakdown(run, mine, "key")
    return out | call_cases(run, tenant)


def median_ms(store: ClickHouseStore, fn: Callable[[], object], *, cold: bool, repeats: int) -> float:
    """The median wall time of `repeats` runs, in ms."""
    times = []
    for _ in range(repeats):
        if cold:
            for statement in COLD:
                store.command(statement)
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 1)


def parts(store: ClickHouseStore) -> dict[str, int]:
    """Active parts per table: unmerged parts make every read slower."""
    sql = "SELECT table, count() FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table"
    return {table: int(n) for table, n in store.query(sql)}


def measure(store: ClickHouseStore, repeats: int) -> dict[str, dict[str, Any]]:
    """Cold and warm medians of every case."""
    table: dict[str, dict[str, Any]] = {}
    for name, fn in cases(store.query, biggest_tenant(store)).items():
        cold = median_ms(store, fn, cold=True, repeats=repeats)
        fn()
        warm = median_ms(store, fn, cold=False, repeats=repeats)
        table[name] = {"cold_ms": cold, "warm_ms": warm, "warm_under_1s": warm < 1000}
        print(f"{name:36} cold {cold:8.1f} ms   warm {warm:8.1f} ms", flush=True)
    return table


def main() -> None:
    """Load (or reuse) the rows, time every analytic, print the JSON table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="chDB directory to load into or reuse")
    parser.add_argument("--database", default=DATABASE, help="database in that directory")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    where = args.dir or Path(tempfile.mkdtemp(prefix="netra-analytics-"))
    store = ClickHouseStore(open_client(f"chdb://{where}", args.database), embedded=True)
    upgrade_clickhouse(store)
    loaded = load(store, args.rows)
    results = measure(store, args.repeats)
    report = {
        "rows": store.query("SELECT count() FROM llm_calls")[0][0], "load_seconds": loaded, "parts": parts(store),
        "cpus": os.cpu_count(), "load_average": os.getloadavg(), "results": results,
        "over_1s_warm": [name for name, r in results.items() if not r["warm_under_1s"]],
    }
    print(json.dumps(report, indent=2, default=str))
    store.close()


if __name__ == "__main__":
    main()
