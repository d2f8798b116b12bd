"""What ClickHouse migrations from one version on cost the ledger's ingest: batches inserted with and without them.

Run with `python -m bench.analytics_ingest [--batches 20] [--rows 10000] [--since 0005]`. Databases in one chDB,
two migrated up to the one before `--since` (the A/A pair: the noise floor) and one migrated to the newest, take
the same batches of generated rows (JSONEachRow through ClickHouseStore.insert_rows, as the ingest sends them),
alternately, so host noise hits all alike. Prints the median seconds per batch and the ratios as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.analytics_data import batch_sql
from core.callrow import COLUMN_NAMES
from core.chmigrate import migration_files, upgrade_clickhouse
from core.clickhouse import ClickHouseStore, open_client

START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


def store_at(url: str, name: str, folder: Path) -> ClickHouseStore:
    """A store whose database is migrated with the files in `folder`."""
    store = ClickHouseStore(open_client(url, name), embedded=True)
    upgrade_clickhouse(store, folder)
    return store


def timed_insert(store: ClickHouseStore, body: list[bytes], token: str) -> float:
    """Seconds one batch insert takes."""
    began = time.perf_counter()
    store.insert_rows(body, token)
    return time.perf_counter() - began


def three_stores(root: Path, since: str) -> dict[str, ClickHouseStore]:
    """Two databases migrated up to the one before `since` (the A/A pair) and one to the newest, in one chDB."""
    older = root / "older"
    older.mkdir()
    for path in migration_files():
        if path.stem < since:
            shutil.copy(path, older / path.name)
    url = f"chdb://{root / 'chdb'}"
    stores = {"without_a": store_at(url, "a", older), "without_b": store_at(url, "b", older)}
    stores["with"] = store_at(url, "c", migration_files()[0].parent)
    return stores


def main() -> None:
    """Insert the batches into every database in turn; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--since", default="0005", help="the first migration whose cost is measured")
    args = parser.parse_args()
    stores = three_stores(Path(tempfile.mkdtemp(prefix="netra-ingest-")), args.since)
    times: dict[str, list[float]] = {name: [] for name in stores}
    for number in range(args.batches):
        sql = batch_sql(COLUMN_NAMES, START, END, args.rows, number * args.rows)
        body = stores["without_a"].client.raw_query(sql, fmt="JSONEachRow").splitlines()
        names = list(stores)
        for name in names[number % 3:] + names[: number % 3]:  # each goes first, second and last in turn
            times[name].append(timed_insert(stores[name], body, f"batch-{number}"))
    medians = {name: statistics.median(values) for name, values in times.items()}
    report = {
        "rows_per_batch": args.rows, "batches": args.batches, "since": args.since, "median_seconds": medians,
        "with_over_without": medians["with"] / medians["without_a"],
        "aa_noise_floor": medians["without_b"] / medians["without_a"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
