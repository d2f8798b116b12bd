"""Analytics on the embedded chDB: every figure against the same figure computed in Python from the inserted rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.analytics import (
    DIMENSIONS,
    BreakdownRow,
    Query,
    breakdown,
    cache_hit_rate,
    cost_quality,
    errors_by_code,
    latency,
    timeseries,
)
from core.analytics.latency import bucket_of, bucket_value
from core.analytics.series import SAVINGS_KINDS
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore, open_client
from core.errors import InvalidParameter
from tests.integration.analytics_rows import (
    DIMENSION_VALUES,
    PERIOD_END,
    T0,
    TENANTS,
    bucket,
    dec,
    grouped,
    in_query,
    insert,
    nearest_rank,
    totals,
)

QUERIES = {
    "all": Query(T0, PERIOD_END),
    "tenant": Query(T0 + timedelta(hours=5), PERIOD_END - timedelta(hours=3), tenant_id=TENANTS[1][0]),
}


@pytest.fixture(scope="module")
def loaded(chdb_dir: Path) -> Iterator[tuple[ClickHouseStore, list[dict[str, Any]]]]:
    """A migrated store holding the known rows, shared by this module's tests (they only read it)."""
    store = ClickHouseStore(open_client(f"chdb://{chdb_dir}", f"t_{uuid.uuid4().hex[:12]}"), embedded=True)
    upgrade_clickhouse(store)
    inserted = insert(store)
    yield store, inserted
    store.command("DROP DATABASE IF EXISTS `" + store.client.database + "`")
    store.close()


@pytest.fixture
def clickhouse_store(loaded: tuple[ClickHouseStore, list[dict[str, Any]]]) -> ClickHouseStore:
    """The shared store (this module's tests never write)."""
    return loaded[0]


@pytest.fixture
def rows(loaded: tuple[ClickHouseStore, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The known rows, inserted; some fall outside the period."""
    assert any(not in_query(r, QUERIES["all"]) for r in loaded[1])
    return loaded[1]


def selected(rows: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    """The rows a query covers, checked to be a proper, non-empty subset."""
    chosen = [r for r in rows if in_query(r, query)]
    assert 0 < len(chosen) < len(rows)
    return chosen


@pytest.mark.parametrize("granularity", ["hour", "day", "week", "month"])
@pytest.mark.parametrize("which", ["all", "tenant"])
def test_timeseries(
    clickhouse_store: ClickHouseStore, rows: list[dict[str, Any]], which: str, granularity: str
) -> None:
    base = QUERIES[which]
    query = Query(base.start, base.end, base.tenant_id, granularity)  # type: ignore[arg-type]
    chosen = selected(rows, query)
    points = timeseries(clickhouse_store.query, query)
    by_bucket = grouped(chosen, lambda r: [bucket(r, granularity)])
    assert [p.start for p in points] == query.buckets()
    assert {p.start for p in points} >= set(by_bucket)
    for point in points:
        mine = by_bucket.get(point.start, [])
        assert point.totals == totals(mine)
        assert point.cache_hits == sum(r["cache_outcome"] == "hit" for r in mine)
        kinds = {
            k: sum((dec(r["savings_usd"]) for r in mine if r["savings_kind"] == k), Decimal(0)) for k in SAVINGS_KINDS
        }
        assert point.savings_by_kind == kinds
    assert sum(p.totals.requests for p in points) == len(chosen)
    if granularity == "hour":
        assert any(p.totals.requests == 0 for p in points)  # empty hours are there, as zeros


def test_week_and_month_buckets_are_calendar_ones(
    clickhouse_store: ClickHouseStore, rows: list[dict[str, Any]]
) -> None:
    weeks = timeseries(clickhouse_store.query, Query(T0, PERIOD_END, granularity="week"))
    months = timeseries(clickhouse_store.query, Query(T0, PERIOD_END, granularity="month"))
    assert [p.start.isoformat() for p in weeks] == ["2026-10-26T00:00:00+00:00", "2026-11-02T00:00:00+00:00"]
    assert [p.start.isoformat() for p in months] == ["2026-10-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00"]


def expected_breakdown(rows: list[dict[str, Any]], by: str) -> list[BreakdownRow]:
    names = dict(TENANTS)
    out = [
        BreakdownRow(value=value, label=names[value] if by == "tenant" else "", totals=totals(group))
        for value, group in grouped(rows, DIMENSION_VALUES[by]).items()
    ]
    return sorted(out, key=lambda row: (-row.totals.cost_usd, row.value.encode()))


@pytest.mark.parametrize("by", DIMENSIONS)
@pytest.mark.parametrize("which", ["all", "tenant"])
def test_breakdowns(clickhouse_store: ClickHouseStore, rows: list[dict[str, Any]], which: str, by: str) -> None:
    query = QUERIES[which]
    expected = expected_breakdown(selected(rows, query), by)
    assert breakdown(clickhouse_store.query, query, by) == expected  # type: ignore[arg-type]
    assert breakdown(clickhouse_store.query, query, by, limit=2) == expected[:2]  # type: ignore[arg-type]


def test_tags_count_each_distinct_tag_once(clickhouse_store: ClickHouseStore, rows: list[dict[str, Any]]) -> None:
    chosen = selected(rows, QUERIES["all"])
    by_tag = {row.value: row.totals.requests for row in breakdown(clickhouse_store.query, QUERIES["all"], "tag")}
    assert by_tag["x"] == sum("x" in r["tags"] for r in chosen)  # the row tagged ["x", "x"] counts once
    assert by_tag[""] == sum(not r["tags"] for r in chosen)
    assert by_tag["back\\slash'q"] > 0 and by_tag['say "hi"'] == by_tag["team:a,b"]


@pytest.mark.parametrize("which", ["all", "tenant"])
def test_errors_by_code(clickhouse_store: ClickHouseStore, rows: list[dict[str, Any]], which: str) -> None:
    chosen = selected(rows, QUERIES[which])
    report = errors_by_code(clickhouse_store.query, QUERIES[which])
    codes = {code: len(group) for code, group in grouped(chosen, lambda r: [r["error_code"]]).items() if code}
    assert report.by_code == codes
    assert list(report.by_code.values()) == sorted(codes.values(), reverse=True)
    assert report.requests == len(chosen) and report.errors == totals(chosen).errors
    assert "upstream_timeout" in report.by_code  # the in-band stream failure, HTTP 200, still counts by code


@pytest.mark.parametrize("which", ["all", "tenant"])
def test_cache_hit_rates(clickhouse_store: ClickHouseStore, rows: list[dict[str, Any]], which: str) -> None:
    chosen = selected(rows, QUERIES[which])
    report = cache_hit_rate(clickhouse_store.query, QUERIES[which])
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in chosen)
    hits = [r for r in chosen if r["cache_outcome"] == "hit"]
    shared = [r for r in chosen if r["cache_outcome"] == "coalesced"]
    hit_tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in hits)
    shared_tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in shared)
    prompt, cached = sum(r["prompt_tokens"] for r in chosen), sum(r["cached_prompt_tokens"] for r in chosen)
    assert (report.requests, report.hits, report.coalesced) == (len(chosen), len(hits), len(shared))
    assert (report.tokens, report.hit_tokens, report.coalesced_tokens) == (tokens, hit_tokens, shared_tokens)
    assert report.hit_rate == Decimal(len(hits)) / Decimal(len(chosen))
    assert report.reuse_rate == Decimal(len(hits) + len(shared)) / Decimal(len(chosen))
    assert report.hit_rate_tokens == Decimal(hit_tokens) / Decimal(tokens)
    assert report.reuse_rate_tokens == Decimal(hit_tokens + shared_tokens) / Decimal(tokens)
    assert report.prompt_cache_rate == Decimal(cached) / Decimal(prompt)


@pytest.mark.parametrize("which", ["all", "tenant"])
def test_cost_quality(clickhouse_store: ClickHouseStore, rows: list[dict[str, Any]], which: str) -> None:
    chosen = selected(rows, QUERIES[which])
    report = cost_quality(clickhouse_store.query, QUERIES[which])
    cost = sum((dec(r["cost_usd"]) for r in chosen), Decimal(0))
    estimated = [r for r in chosen if r["tokens_estimated"]]
    estimated_cost = sum((dec(r["cost_usd"]) for r in estimated), Decimal(0))
    unpriced = grouped([r for r in chosen if r["cost_usd"] is None], lambda r: [r["served_model"]])
    assert (report.requests, report.cost_usd, report.estimated_requests) == (len(chosen), cost, len(estimated))
    assert report.estimated_cost_usd == estimated_cost and report.estimated_cost_share == estimated_cost / cost
    assert report.unpriced_requests == sum(len(group) for group in unpriced.values())
    counts = sorted(((m, len(g)) for m, g in unpriced.items()), key=lambda x: (-x[1], x[0]))
    assert list(report.unpriced_by_model.items()) == counts
    assert report.unpriced_by_model["local\\llama"] > 0


def check_percentiles(reported: dict[str, float | None], values: list[float]) -> None:
    for name, level in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        exact = nearest_rank(values, level)
        value = reported[name]
        assert value is not None and value == pytest.approx(bucket_value(bucket_of(exact)), rel=1e-12)
        assert abs(value / exact - 1) <= 0.025


@pytest.mark.parametrize("which", ["all", "tenant"])
def test_latency_percentiles(clickhouse_store: ClickHouseStore, rows: list[dict[str, Any]], which: str) -> None:
    chosen = selected(rows, QUERIES[which])
    report = latency(clickhouse_store.query, QUERIES[which])
    ttfts = [r["ttft_ms"] for r in chosen if r["ttft_ms"] is not None]
    assert (report.overall.calls, report.overall.ttft_calls) == (len(chosen), len(ttfts))
    check_percentiles(report.overall.latency_ms, [r["latency_ms"] for r in chosen])
    check_percentiles(report.overall.ttft_ms, ttfts)
    for model, group in grouped(chosen, lambda r: [r["served_model"]]).items():
        check_percentiles(report.by_model[model].latency_ms, [r["latency_ms"] for r in group])
    assert set(report.by_model) == {r["served_model"] for r in chosen}


def test_an_empty_period_gives_zeros_and_nones(clickhouse_store: ClickHouseStore, rows: list[dict[str, Any]]) -> None:
    query = Query(T0 - timedelta(days=30), T0 - timedelta(days=29), tenant_id="nobody")
    assert all(p.totals.requests == 0 for p in timeseries(clickhouse_store.query, query))
    assert breakdown(clickhouse_store.query, query, "tag") == []
    assert cache_hit_rate(clickhouse_store.query, query).hit_rate is None
    assert cost_quality(clickhouse_store.query, query).estimated_cost_share is None
    assert latency(clickhouse_store.query, query).overall.latency_ms == {"p50": None, "p95": None, "p99": None}


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"start": T0 + timedelta(minutes=30), "end": PERIOD_END}, "start"),
        ({"start": T0, "end": PERIOD_END + timedelta(seconds=1)}, "end"),
        ({"start": T0, "end": T0}, "end"),
        ({"start": T0, "end": PERIOD_END, "granularity": "minute"}, "granularity"),
        ({"start": T0, "end": T0 + timedelta(days=3650), "granularity": "hour"}, "granularity"),
        ({"start": "2026-10-30", "end": PERIOD_END}, "start"),
    ],
)
def test_invalid_queries_are_refused(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        Query(**kwargs)
    assert caught.value.param == param and caught.value.status_code == 400


def test_invalid_breakdowns_are_refused(clickhouse_store: ClickHouseStore) -> None:
    for by, limit, param in (("colour", 10, "by"), ("tag", 0, "limit"), ("tag", 1001, "limit")):
        with pytest.raises(InvalidParameter) as caught:
            breakdown(clickhouse_store.query, QUERIES["all"], by, limit)  # type: ignore[arg-type]
        assert caught.value.param == param
