"""The calls explorer (filters, keyset pagination under inserts) and migration 0005's backfill, on chDB."""

from __future__ import annotations

import random
import shutil
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.analytics import CallFilter, Query, breakdown, latency, list_calls
from core.analytics.calls import encode_cursor, request_id_keys_sql
from core.chmigrate import CLICKHOUSE_MIGRATIONS, migration_files, split_statements, upgrade_clickhouse
from core.clickhouse import ClickHouseStore, open_client
from core.errors import InvalidParameter
from core.ledger_report import from_micros, to_micros
from tests.integration.analytics_rows import PERIOD_END, T0, TENANTS, in_query, insert, make_row, totals

FILTERS: dict[str, tuple[dict[str, Any], Any]] = {  # name: (CallFilter fields, the same test in Python)
    "none": ({}, lambda r: True),
    "tenant": ({"tenant_id": TENANTS[1][0]}, lambda r: r["tenant_id"] == TENANTS[1][0]),
    "model served or requested": (
        {"model": "gpt-4o-mini"},
        lambda r: "gpt-4o-mini" in (r["served_model"], r["requested_model"]),
    ),
    "model with a backslash": ({"model": "local\\llama"}, lambda r: r["served_model"] == "local\\llama"),
    "status": ({"status": "cache_hit"}, lambda r: r["status"] == "cache_hit"),
    "savings kind": ({"savings_kind": "route"}, lambda r: r["savings_kind"] == "route"),
    "tag with quotes": ({"tag": 'say "hi"'}, lambda r: 'say "hi"' in r["tags"]),
    "tag with a backslash and quote": ({"tag": "back\\slash'q"}, lambda r: "back\\slash'q" in r["tags"]),
    "request id prefix": ({"request_id_prefix": "req-001"}, lambda r: r["request_id"].startswith("req-001")),
    "period": (
        {"start": T0 + timedelta(hours=7, microseconds=5), "end": T0 + timedelta(days=1, seconds=1)},
        lambda r: (
            to_micros(T0 + timedelta(hours=7, microseconds=5))
            <= r["received_at"]
            < to_micros(T0 + timedelta(days=1, seconds=1))
        ),
    ),
    "several": (
        {"tenant_id": TENANTS[0][0], "status": "ok", "tag": "team:search"},
        lambda r: r["tenant_id"] == TENANTS[0][0] and r["status"] == "ok" and "team:search" in r["tags"],
    ),
    "injection attempt": ({"tenant_id": "x' OR 1=1 OR '"}, lambda r: False),
    "like wildcards are literal": ({"request_id_prefix": "req-%"}, lambda r: False),
    "request id prefix and more": (
        {"request_id_prefix": "req-00", "status": "ok", "tag": "team:search"},
        lambda r: r["request_id"].startswith("req-00") and r["status"] == "ok" and "team:search" in r["tags"],
    ),
}


def order(rows: list[dict[str, Any]]) -> list[str]:
    """Request ids newest first, ties by request id descending."""
    return [r["request_id"] for r in sorted(rows, key=lambda r: (r["received_at"], r["request_id"]), reverse=True)]


def walk(store: ClickHouseStore, filters: CallFilter, limit: int) -> list[dict[str, Any]]:
    """Every page, first to last."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = list_calls(store.query, filters, cursor, limit)
        seen += page.rows
        if page.next_cursor is None:
            return seen
        assert len(page.rows) <= limit
        cursor = page.next_cursor


@pytest.mark.parametrize("name", FILTERS)
def test_filters(clickhouse_store: ClickHouseStore, name: str) -> None:
    rows = insert(clickhouse_store, count=240, batches=3)
    fields, keep = FILTERS[name]
    expected = order([r for r in rows if keep(r)])
    assert [r["request_id"] for r in walk(clickhouse_store, CallFilter(**fields), 500)] == expected
    assert [r["request_id"] for r in walk(clickhouse_store, CallFilter(**fields), 9)] == expected


def test_a_row_comes_back_whole(clickhouse_store: ClickHouseStore) -> None:
    rows = insert(clickhouse_store, count=30, batches=1)
    newest = max(rows, key=lambda r: (r["received_at"], r["request_id"]))
    got = list_calls(clickhouse_store.query, CallFilter(), limit=1).rows[0]
    assert got == {
        **newest,
        **{k: from_micros(newest[k]) for k in ("received_at", "finished_at", "first_byte_at")},
        **{k: None if newest[k] is None else Decimal(newest[k]) for k in ("cost_usd", "baseline_cost_usd")},
        "savings_usd": Decimal(newest["savings_usd"]),
    }


def test_pagination_walks_every_row_once_while_rows_arrive(clickhouse_store: ClickHouseStore) -> None:
    rows = insert(clickhouse_store, count=200, batches=2)
    rng = random.Random(5)
    seen: list[dict[str, Any]] = []
    page = list_calls(clickhouse_store.query, CallFilter(), limit=17)
    newer, older = [], []
    while True:
        seen += page.rows
        if page.next_cursor is None:
            break
        at = seen[-1]["received_at"]
        # Between pages: a call newer than anything listed, and one older than the cursor (a late replay).
        newer.append(make_row(10_000 + len(newer), rng, received_at=to_micros(PERIOD_END) + len(newer)))
        older.append(make_row(20_000 + len(older), rng, received_at=to_micros(at) - 1_000_000))
        clickhouse_store.insert_rows([newer[-1], older[-1]], f"late-{len(older)}")
        page = list_calls(clickhouse_store.query, CallFilter(), page.next_cursor, limit=17)
    ids = [r["request_id"] for r in seen]
    assert len(ids) == len(set(ids))  # nothing twice
    assert set(ids) == {r["request_id"] for r in rows + older}  # every row once; the late older ones too
    assert not {r["request_id"] for r in newer} & set(ids)  # rows ahead of the walk do not shift it
    keys = [(r["received_at"], r["request_id"]) for r in seen]
    assert keys == sorted(keys, reverse=True) and len(newer) >= 10


def test_a_call_sent_twice_is_listed_once(clickhouse_store: ClickHouseStore) -> None:
    rows = insert(clickhouse_store, count=60, batches=1)
    clickhouse_store.insert_rows(rows, "a-new-token")  # the same rows under a new token: two copies in the table
    assert clickhouse_store.query("SELECT count() FROM llm_calls")[0][0] == 120
    for limit in (1, 7, 60, 500):
        assert [r["request_id"] for r in walk(clickhouse_store, CallFilter(), limit)] == order(rows)


def test_a_request_id_search_reads_the_projection_ordered_by_request_id(clickhouse_store: ClickHouseStore) -> None:
    rows = insert(clickhouse_store, count=60, batches=1)
    clickhouse_store.insert_rows(rows, "a-new-token")  # two copies of every call, as before a merge
    wanted = rows[17]["request_id"]
    for limit in (1, 5):
        found = walk(clickhouse_store, CallFilter(request_id_prefix=wanted), limit)
        assert [r["request_id"] for r in found] == [wanted]
    # Enough calls that reading the table costs more granules than the projection, as in production.
    at = f"fromUnixTimestamp64Micro({to_micros(T0)} + number * 1000, 'UTC')"
    clickhouse_store.command(
        "INSERT INTO llm_calls (request_id, received_at, finished_at, tenant_id) SELECT "
        f"concat('req_', lower(hex(cityHash64(number)))), {at}, {at}, 'many' FROM numbers(200000)"
    )
    # Every filter the explorer has, so that a filter added without its column in the projection fails here.
    clauses, params = CallFilter(
        tenant_id="many", model="gpt-4o", status="ok", savings_kind="route", tag="a",
        request_id_prefix="req_ab", start=T0, end=PERIOD_END,
    ).where()  # fmt: skip
    keys = request_id_keys_sql(" WHERE " + " AND ".join(clauses))
    forced = f"{keys}, force_optimize_projection_name = 'by_request_id'"
    clickhouse_store.query(forced, params | {"fetch": 2})  # refused unless the projection answers it


@pytest.mark.parametrize("limit", [0, 501, -1, True, 2.5])
def test_bad_limits_are_refused(clickhouse_store: ClickHouseStore, limit: Any) -> None:
    with pytest.raises(InvalidParameter) as caught:
        list_calls(clickhouse_store.query, CallFilter(), limit=limit)
    assert caught.value.param == "limit"


@pytest.mark.parametrize("cursor", ["", "not base64!", "W10", "WzEsMl0", "bnVsbA", encode_cursor(1, "x")[:-3] + "'\\"])
def test_bad_cursors_are_refused(clickhouse_store: ClickHouseStore, cursor: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        list_calls(clickhouse_store.query, CallFilter(), cursor)
    assert caught.value.param == "cursor"


def test_migration_0005_backfills_existing_rows_once(settings: Any, tmp_path: Path) -> None:
    store = ClickHouseStore(open_client(settings.resolved_clickhouse_url, f"t_{uuid.uuid4().hex[:12]}"), embedded=True)
    try:
        older = tmp_path / "older"
        older.mkdir()
        for path in migration_files():
            if path.stem < "0005":
                shutil.copy(path, older / path.name)
        upgrade_clickhouse(store, older)
        rows = insert(store, count=150, batches=2)
        query = Query(T0, PERIOD_END)
        assert upgrade_clickhouse(store)[0] == "0005_analytics_rollups"
        before = (breakdown(store.query, query, "tag"), latency(store.query, query))
        by_status = {row.value: row.totals for row in breakdown(store.query, query, "status")}
        chosen = [r for r in rows if in_query(r, query)]
        assert by_status == {s: totals([r for r in chosen if r["status"] == s]) for s in {r["status"] for r in chosen}}
        assert before[1].overall.calls == len(chosen)
        # Re-running the file (a crash before its version was recorded) must not count the old rows again.
        for statement in split_statements((CLICKHOUSE_MIGRATIONS / "0005_analytics_rollups.sql").read_text("utf-8")):
            store.command(statement)
        assert (breakdown(store.query, query, "tag"), latency(store.query, query)) == before
    finally:
        store.command("DROP DATABASE IF EXISTS `" + str(store.client.database) + "`")
        store.close()
