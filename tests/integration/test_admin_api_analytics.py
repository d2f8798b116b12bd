"""REST API: analytics over ledger rows in chDB (viewer and above), figures checked against the rows inserted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from admin.ledger import SharedReader
from core.clickhouse import ClickHouseStore
from tests.integration import admin_api_harness as harness
from tests.integration.admin_api_harness import HOSTILE, Api, Database, running_api
from tests.invoice_rows import ledger_row

sqlite_sessions = harness.sqlite_sessions  # the harness's fixture
OCT = {"start": "2026-10-01T00:00:00Z", "end": "2026-10-04T00:00:00Z"}


def row(rid: str, tenant: tuple[str, str], day: int, hour: int = 10, **fields: Any) -> dict[str, Any]:
    error_code = fields.pop("error_code", "")
    made = ledger_row(rid, tenant[0], tenant[1], datetime(2026, 10, day, hour, tzinfo=UTC), **fields)
    made["error_code"] = error_code
    return made


ACME, HOSTILE_TENANT = ("ten_acme", "acme"), ("ten_hostile", HOSTILE)
ROWS = [
    row("a1", ACME, 1, kind="cache", baseline="0.400000000", cost="0"),
    row("a2", ACME, 1, 11, baseline="0.100000000", cost="0.100000000"),
    row("a3", ACME, 2, kind="route", baseline="1.000000000", cost="0.250000000"),
    row("h1", HOSTILE_TENANT, 2, baseline="2.000000000", cost="2.000000000"),
    row("h2", HOSTILE_TENANT, 2, 12, status="upstream_error", http_status=502, baseline="0", cost="0",
        error_code="upstream_error"),
]


@pytest.fixture
async def api(settings: Any, sqlite_sessions: Any, clickhouse_store: ClickHouseStore) -> AsyncIterator[Api]:
    clickhouse_store.insert_rows(ROWS, "analytics-api")
    async with running_api(Database(settings, sqlite_sessions), ledger=SharedReader(clickhouse_store)) as running:
        yield running


async def test_timeseries_by_day(api: Api) -> None:
    series = await api.ok("GET", "/api/analytics/timeseries", "viewer", params={**OCT, "granularity": "day"})
    points = [(p["start"], p["totals"]["requests"], p["totals"]["savings_usd"]) for p in series["data"]]
    assert points == [
        ("2026-10-01T00:00:00Z", 2, "0.400000000"),
        ("2026-10-02T00:00:00Z", 3, "0.750000000"),
        ("2026-10-03T00:00:00Z", 0, "0"),
    ]
    assert series["data"][1]["totals"]["errors"] == 1 and series["data"][1]["savings_by_kind"]["route"] == "0.750000000"
    only_acme = await api.ok("GET", "/api/analytics/timeseries", "viewer", params={**OCT, "tenant_id": "ten_acme"})
    assert [p["totals"]["requests"] for p in only_acme["data"]] == [2, 1, 0]


async def test_breakdown_by_tenant_labels_names_as_data(api: Api) -> None:
    found = await api.ok("GET", "/api/analytics/breakdown", "viewer", params={**OCT, "by": "tenant"})
    rows = [(r["value"], r["label"], r["totals"]["cost_usd"], r["totals"]["requests"]) for r in found["data"]]
    assert rows == [("ten_hostile", HOSTILE, "2.000000000", 2), ("ten_acme", "acme", "0.350000000", 3)]
    kinds = await api.ok("GET", "/api/analytics/breakdown", "viewer", params={**OCT, "by": "savings_kind", "limit": 1})
    assert len(kinds["data"]) == 1 and kinds["by"] == "savings_kind"


async def test_errors_cache_cost_quality_and_latency(api: Api) -> None:
    errors = await api.ok("GET", "/api/analytics/errors", "viewer", params=OCT)
    assert (errors["requests"], errors["errors"], errors["by_code"]) == (5, 1, {"upstream_error": 1})
    cache = await api.ok("GET", "/api/analytics/cache", "viewer", params=OCT)
    assert cache["requests"] == 5 and cache["hits"] == 0
    quality = await api.ok("GET", "/api/analytics/cost-quality", "viewer", params=OCT)
    assert (quality["requests"], quality["cost_usd"], quality["unpriced_requests"]) == (5, "2.350000000", 0)
    latency = await api.ok("GET", "/api/analytics/latency", "viewer", params=OCT)
    assert latency["overall"]["calls"] == 5 and set(latency["by_model"]) == {"gpt-4o", "gpt-4o-mini"}  # served models
    assert 75 <= latency["overall"]["latency_ms"]["p50"] <= 85  # every row took 80 ms (5% histogram buckets)


async def test_calls_explorer_pages_with_a_cursor(api: Api) -> None:
    first = await api.ok("GET", "/api/analytics/calls", "viewer", params={"tenant_id": "ten_acme", "limit": 2})
    assert [r["request_id"] for r in first["rows"]] == ["a3", "a2"] and first["next_cursor"]
    assert first["rows"][0]["cost_usd"] == "0.250000000" and first["rows"][0]["received_at"].endswith("Z")
    rest = await api.ok("GET", "/api/analytics/calls", "viewer",
                        params={"tenant_id": "ten_acme", "limit": 2, "cursor": first["next_cursor"]})
    assert [r["request_id"] for r in rest["rows"]] == ["a1"] and rest["next_cursor"] is None
    failed = await api.ok("GET", "/api/analytics/calls", "viewer", params={"status": "upstream_error"})
    assert [(r["request_id"], r["tenant_name"]) for r in failed["rows"]] == [("h2", HOSTILE)]


async def test_the_default_period_is_the_last_seven_days(api: Api, clickhouse_store: ClickHouseStore) -> None:
    # The harness's clock stands at 2026-12-01 12:00 UTC.
    clickhouse_store.insert_rows([ledger_row("recent", "ten_acme", "acme", datetime(2026, 11, 30, tzinfo=UTC))],
                                 "recent")
    errors = await api.ok("GET", "/api/analytics/errors", "viewer")
    assert (errors["requests"], errors["errors"]) == (1, 0)


async def test_refusals(api: Api) -> None:
    url = "/api/analytics/timeseries"
    await api.refused("GET", url, None, 401, "missing_token")
    await api.refused("GET", url, "viewer", 400, "invalid_value", "start", params={"start": "yesterday"})
    await api.refused("GET", url, "viewer", 400, "invalid_type", "start", params={"start": "2026-10-01T00:30:00Z"})
    await api.refused("GET", url, "viewer", 400, "invalid_type", "end", params={**OCT, "end": OCT["start"]})
    await api.refused("GET", url, "viewer", 400, "invalid_value", "granularity", params={"granularity": "minute"})
    await api.refused("GET", "/api/analytics/breakdown", "viewer", 400, "invalid_value", "by", params={"by": "x"})
    await api.refused("GET", "/api/analytics/calls", "viewer", 400, "invalid_type", "cursor",
                      params={"cursor": "not-ours"})
    assert (await api.ok("GET", url, "finance", params=OCT))["data"][0]["totals"]["requests"] == 2
