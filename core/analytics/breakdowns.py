"""Totals broken down by one dimension (tenant, model, provider, endpoint, key, tag, ...) and errors by code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from core.analytics.figures import TOTALS_COLUMNS, Totals
from core.analytics.query import Query, Run
from core.errors import InvalidParameter

Dimension = Literal[
    "tenant", "requested_model", "served_model", "provider",
    "endpoint", "key", "tag", "savings_kind", "status", "cache_outcome", "error_code",
]  # fmt: skip
DIMENSIONS: tuple[str, ...] = get_args(Dimension)
# Columns of the hourly rollup; every other dimension is a `dimension` of llm_calls_dims_hourly.
_HOURLY_COLUMNS = {"tenant": "tenant_id", "requested_model": "requested_model", "served_model": "served_model",
                   "provider": "provider"}  # fmt: skip
MAX_ROWS = 1000


@dataclass(frozen=True)
class BreakdownRow:
    """One value of the dimension: the value, a label (the tenant's name for tenants, else ''), its totals."""

    value: str
    label: str
    totals: Totals


def _source(by: str, where: str) -> tuple[str, str, str]:
    """(value expression, label expression, FROM … WHERE …) for a dimension."""
    if by in _HOURLY_COLUMNS:
        label = "anyLast(tenant_name)" if by == "tenant" else "''"
        return f"toString({_HOURLY_COLUMNS[by]})", label, f"llm_calls_hourly{where}"
    return "value", "''", f"llm_calls_dims_hourly{where} AND dimension = {{dimension:String}}"


def breakdown(run: Run, query: Query, by: Dimension, limit: int = 100) -> list[BreakdownRow]:
    """The `limit` values of `by` with the highest cost in the period (ties by value), with their totals.

    By tag, a call with several tags counts under each of them, and a call with none under ''.
    """
    if by not in DIMENSIONS:
        raise InvalidParameter(f"cannot break down by {by!r}: use one of {', '.join(DIMENSIONS)}", param="by")
    if not 1 <= limit <= MAX_ROWS:
        raise InvalidParameter(f"limit must be between 1 and {MAX_ROWS}", param="limit")
    where, params = query.rollup_where()
    value, label, source = _source(by, where)
    sql = (
        f"SELECT {value} AS v, {label}, {TOTALS_COLUMNS} FROM {source} GROUP BY v "
        "ORDER BY sum(cost_usd) DESC, v LIMIT {limit:UInt32}"
    )
    rows = run(sql, {**params, "dimension": by, "limit": limit})
    return [BreakdownRow(value=row[0], label=row[1], totals=Totals.from_row(row[2:])) for row in rows]


@dataclass(frozen=True)
class ErrorReport:
    """Calls in the period, those that failed, and the calls per error code (most frequent first)."""

    requests: int
    errors: int
    by_code: dict[str, int]


def errors_by_code(run: Run, query: Query) -> ErrorReport:
    """Calls per `error_code` (the code the client received, in the body or in-band in a stream).

    `errors` counts calls with an HTTP status of 400 or more, cancelled and crashed calls, as the rollups do;
    `by_code` also holds streams that failed after a 200 (their code went in-band).
    """
    where, params = query.rollup_where()
    sql = (
        "SELECT value, sum(requests), sum(errors) FROM llm_calls_dims_hourly"
        f"{where} AND dimension = 'error_code' GROUP BY value ORDER BY sum(requests) DESC, value"
    )
    rows: list[tuple[Any, ...]] = run(sql, params)
    by_code = {code: int(calls) for code, calls, _ in rows if code}
    return ErrorReport(
        requests=sum(int(row[1]) for row in rows), errors=sum(int(row[2]) for row in rows), by_code=by_code
    )

