"""What migration 0005's two materialized views cost the ledger's ingest: batches inserted with and without them.

Run with `python -m bench.analytics_ingest [--batches 20] [--rows 10000]`. Two databases in one chDB, one migrated
up to 0003 and one to 0005, take the same batches of generated rows (JSONEachRow through
ClickHouseStore.insert_rows, as the ingest sends them), alternately, so host noise hits both alike. An A/A pair
(two databases without 0005) gives the noise floor. Prints the median seconds per batch and the ratios as JSON.
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


def three_stores(root: Path) -> dict[str, ClickHouseStore]:
    """Two databases migrated up to 0003 (the A/A pair) and one up to 0005, in one chDB under `root`."""
    older = root / "older"
    older.mkdir()
    for path in migration_files():
        if path.stem < "0005":
            shutil.copy(path, older / path.name)
    url = f"chdb://{root / 'chdb'}"
    stores = {"without_a": store_at(url, "a", older), "without_b": store_at(url, "b", older)}
    stores["with_0005"] = store_at(url, "c", migration_files()[0].parent)
    return stores


def main() -> None:
    """Insert the batches into every database in turn; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    stores = three_stores(Path(tempfile.mkdtemp(prefix="netra-ingest-")))
    times: dict[str, list[float]] = {name: [] for name in stores}
    for number in range(args.batches):
        sql = batch_sql(COLUMN_NAMES, START, END, args.rows, number * args.rows)
        body = stores["without_a"].client.raw_query(sql, fmt="JSONEachRow").splitlines()
        for name, store in stores.items():
            times[name].append(timed_insert(store, body, f"batch-{number}"))
    medians = {name: statistics.median(values) for name, values in times.items()}
    report = {
        "rows_per_batch": args.rows, "batches": args.batches, "median_seconds": medians,
        "with_0005_over_without": medians["with_0005"] / medians["without_a"],
        "aa_noise_floor": medians["without_b"] / medians["without_a"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
