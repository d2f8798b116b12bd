"""The analytics pages: Overview, Savings and the Calls explorer, over core.analytics and the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from admin.dashboard import charts
from admin.dashboard.ledger import LedgerUnavailable, Reading
from admin.dashboard.period import PERIODS, Period, labels, period_of
from admin.dashboard.web import page, pages_of
from admin.state import get_state
from core.analytics import (
    CallFilter,
    SeriesPoint,
    breakdown,
    cache_hit_rate,
    errors_by_code,
    latency,
    list_calls,
    timeseries,
)
from core.tenants import list_tenants

SAVINGS_BY = (("savings_kind", "savings-kind", "Savings by kind"), ("requested_model", "savings-model",
              "Savings by requested model"), ("tenant", "savings-tenant", "Savings by tenant"),
              ("tag", "savings-tag", "Savings by tag"))
CALL_FILTERS = ("model", "status", "savings_kind", "tag", "request_id_prefix")
MAX_FILTER = 200


async def _picker(request: Request) -> dict[str, Any]:
    """The period picker's and tenant filter's choices and the period chosen."""
    period = period_of(request, get_state(request).clock())
    async with get_state(request).sessions() as session:
        tenants = [(t.id, t.name) for t in await list_tenants(session)]
    return {"period": period, "periods": PERIODS, "tenants": tenants}


def _overview_charts(period: Period, series: list[SeriesPoint]) -> list[Markup]:
    x = labels(period)
    spend = [("Actual cost", [p.totals.cost_usd for p in series]),
             ("Baseline (without Netra)", [p.totals.baseline_cost_usd for p in series])]
    traffic = [("Requests", [p.totals.requests for p in series]), ("Errors", [p.totals.errors for p in series])]
    hits = [("Cache hit rate %", [Decimal(100 * p.cache_hits) / p.totals.requests if p.totals.requests else None
                                  for p in series])]
    return [charts.render("spend", "Spend against baseline (USD)", x, spend),
            charts.render("requests", "Requests and errors", x, traffic),
            charts.render("hits", "Cache hit rate (%)", x, hits)]


def _by_kind(series: list[SeriesPoint]) -> dict[str, Decimal]:
    kinds: dict[str, Decimal] = {}
    for point in series:
        for kind, value in point.savings_by_kind.items():
            kinds[kind] = kinds.get(kind, Decimal(0)) + value
    return {kind: value for kind, value in sorted(kinds.items()) if value}


async def _overview_figures(ledger: Reading, period: Period) -> dict[str, Any]:
    series = await ledger.read(timeseries, period.query)
    kinds = _by_kind(series)
    return {
        "charts": _overview_charts(period, series), "kinds": kinds,
        "kinds_chart": charts.render("savings-kind", "Savings by kind (USD)", list(kinds),
                                     [("Savings", list(kinds.values()))]) if kinds else None,
        "requests": sum(p.totals.requests for p in series), "errors": sum(p.totals.errors for p in series),
        "cost": sum((p.totals.cost_usd for p in series), Decimal(0)),
        "baseline": sum((p.totals.baseline_cost_usd for p in series), Decimal(0)),
        "savings": sum((p.totals.savings_usd for p in series), Decimal(0)),
        "cache": await ledger.read(cache_hit_rate, period.query),
        "latency": await ledger.read(latency, period.query),
        "error_codes": await ledger.read(errors_by_code, period.query),
    }


async def overview(request: Request) -> Response:
    """Spend against baseline over time, savings by kind, requests, cache hit rate, latency, errors."""
    context = await _picker(request)
    try:
        async with pages_of(request).ledger.reading() as ledger:
            context |= await _overview_figures(ledger, context["period"])
    except LedgerUnavailable:
        return page(request, "ledger_unavailable.html", title="Overview", **context)
    return page(request, "overview.html", title="Overview", **context)


async def savings(request: Request) -> Response:
    """Savings broken down by kind, model, tenant and tag."""
    context = await _picker(request)
    tables = []
    try:
        async with pages_of(request).ledger.reading() as ledger:
            for by, name, title in SAVINGS_BY:
                found = await ledger.read(breakdown, context["period"].query, by, 20)
                rows = [r for r in found if r.totals.savings_usd]
                chart = charts.render(name, title + " (USD)", [r.label or r.value or "(none)" for r in rows],
                                      [("Savings", [r.totals.savings_usd for r in rows])]) if rows else None
                tables.append({"title": title, "rows": rows, "chart": chart})
    except LedgerUnavailable:
        return page(request, "ledger_unavailable.html", title="Savings", **context)
    return page(request, "savings.html", title="Savings", tables=tables, **context)


def _call_filter(request: Request, period: Period) -> CallFilter:
    given = {name: request.query_params.get(name, "")[:MAX_FILTER] or None for name in CALL_FILTERS}
    return CallFilter(start=period.query.start, end=period.query.end, tenant_id=period.tenant_id, **given)


async def calls(request: Request) -> Response:
    """The calls explorer: the newest calls first, filtered, a page at a time."""
    context = await _picker(request)
    filters = _call_filter(request, context["period"])
    cursor = request.query_params.get("cursor") or None
    try:
        async with pages_of(request).ledger.reading() as ledger:
            found = await ledger.read(list_calls, filters, cursor, 50)
    except LedgerUnavailable:
        return page(request, "ledger_unavailable.html", title="Calls", **context)
    given = {name: request.query_params.get(name, "") for name in CALL_FILTERS}
    period: Period = context["period"]
    older = urlencode({"period": period.name, "tenant": period.tenant_id or "", **given,
                       "cursor": found.next_cursor}) if found.next_cursor else None
    return page(request, "calls.html", title="Calls", calls=found.rows, older=older, filters=given, **context)
