"""Spend, baseline, savings and requests over time, from the daily rollup when whole days will do, else the hourly."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.analytics.figures import TOTALS_COLUMNS, TOTALS_SQL, Totals
from core.analytics.query import BUCKET_SQL, Query, Run, from_epoch

SAVINGS_KINDS = ("cache", "coalesce", "route", "batch")
_KIND_COLUMNS = ", ".join(f"sum(savings_{kind}_usd)" for kind in SAVINGS_KINDS)


@dataclass(frozen=True)
class SeriesPoint:
    """One bucket of a time series: its start (UTC) and the totals of the calls received in it."""

    start: datetime
    totals: Totals
    cache_hits: int
    savings_by_kind: dict[str, Decimal] = field(default_factory=dict)


def timeseries(run: Run, query: Query) -> list[SeriesPoint]:
    """Every bucket of the period in order, empty buckets included (as zeros)."""
    where, params = query.rollup_where()
    sql = (
        f"SELECT {BUCKET_SQL[query.granularity]} AS bucket, {TOTALS_COLUMNS}, sum(cache_hits), {_KIND_COLUMNS} "
        f"FROM {query.daily_or_hourly('llm_calls_daily', 'llm_calls_hourly')}{where} GROUP BY bucket ORDER BY bucket"
    )
    found = {from_epoch(row[0]): row[1:] for row in run(sql, params)}
    return [_point(start, found.get(start)) for start in query.buckets()]


def _point(start: datetime, values: tuple[Any, ...] | None) -> SeriesPoint:
    if values is None:
        zero = dict.fromkeys(SAVINGS_KINDS, Decimal(0))
        return SeriesPoint(start=start, totals=Totals.zero(), cache_hits=0, savings_by_kind=zero)
    count = len(TOTALS_SQL)
    kinds = {kind: Decimal(v) for kind, v in zip(SAVINGS_KINDS, values[count + 1 :], strict=True)}
    return SeriesPoint(
        start=start, totals=Totals.from_row(values[:count]), cache_hits=int(values[count]), savings_by_kind=kinds
    )
