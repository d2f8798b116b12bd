"""REST API: analytics over the ledger (viewer and above): time series, breakdowns, errors, cache, cost quality,
latency, and the calls explorer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin.api_params import choice, optional_whole
from admin.api_schemas import STRING, obj
from admin.apispec import Endpoint, Handler, Operation, Param, ok, query_enum
from admin.services import analytics as service
from admin.state import get_state
from core import analytics
from core.analytics.query import GRANULARITIES
from core.errors import InvalidParameter

TAG = "analytics"
CALL_FILTERS = ("tenant_id", "model", "status", "savings_kind", "tag", "request_id_prefix")


def _time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidParameter(f"'{name}' must be an ISO 8601 date and time, e.g. 2026-11-01T00:00:00Z.",
                               code="invalid_value", param=name) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def query_of(request: Request) -> analytics.Query:
    """The period (default: the last seven days), tenant and granularity of an analytics request."""
    start, end = service.default_period(get_state(request).clock())
    granularity = cast(analytics.Granularity, choice(request, "granularity", GRANULARITIES) or "day")
    return analytics.Query(start=_time(request, "start") or start, end=_time(request, "end") or end,
                           tenant_id=request.query_params.get("tenant_id"), granularity=granularity)


async def _answer(request: Request, question: service.Question) -> Response:
    return JSONResponse(await service.ask(get_state(request).ledger, question))


async def timeseries(request: Request) -> Response:
    """Calls, cost, baseline and savings per bucket of the period."""
    query = query_of(request)
    return await _answer(request, lambda run: {"object": "list", "data": analytics.timeseries(run, query)})


async def breakdown(request: Request) -> Response:
    """Totals per value of one dimension, highest cost first."""
    query = query_of(request)
    by = cast(analytics.Dimension, choice(request, "by", analytics.DIMENSIONS) or "tenant")
    limit = optional_whole(request, "limit", 1, 1000) or 100
    return await _answer(request, lambda run: {"object": "list", "by": by,
                                               "data": analytics.breakdown(run, query, by, limit)})


async def errors(request: Request) -> Response:
    """Requests, errors, and errors by code."""
    query = query_of(request)
    return await _answer(request, lambda run: analytics.errors_by_code(run, query))


async def cache(request: Request) -> Response:
    """Cache hit and reuse rates, by requests and by tokens, and the providers' prompt cache rate."""
    query = query_of(request)
    return await _answer(request, lambda run: analytics.cache_hit_rate(run, query))


async def cost_quality(request: Request) -> Response:
    """How much of the cost is estimated, and which calls are unpriced."""
    query = query_of(request)
    return await _answer(request, lambda run: analytics.cost_quality(run, query))


async def latency(request: Request) -> Response:
    """Latency and time-to-first-token percentiles, overall and per model."""
    query = query_of(request)
    return await _answer(request, lambda run: analytics.latency(run, query))


async def calls(request: Request) -> Response:
    """Calls matching the filters, newest first, a page at a time (`cursor` from the previous page)."""
    filters = analytics.CallFilter(start=_time(request, "start"), end=_time(request, "end"),
                                   **{name: request.query_params.get(name) for name in CALL_FILTERS})
    cursor, limit = request.query_params.get("cursor"), optional_whole(request, "limit", 1, 500) or 50
    return await _answer(request, lambda run: analytics.list_calls(run, filters, cursor, limit))


def _time_param(name: str, what: str) -> Param:
    return Param(name, "query", {"type": "string", "format": "date-time"}, what)


PERIOD = (
    _time_param("start", "period start, a whole UTC hour (default: seven days before `end`)"),
    _time_param("end", "period end, exclusive, a whole UTC hour (default: the end of the current hour)"),
    Param("tenant_id", "query", STRING, "one tenant's calls (default: every tenant's)"),
    query_enum("granularity", GRANULARITIES, "bucket size of time series (default: day)"),
)
FIGURES = {"type": "object", "additionalProperties": True, "description": "money as decimal strings"}
LISTING = obj({"object": {"const": "list"}, "data": {"type": "array", "items": FIGURES}}, additionalProperties=True)
CALLS = (
    _time_param("start", "received at or after"), _time_param("end", "received before"),
    *(Param(name, "query", STRING, f"only calls with this {name}") for name in CALL_FILTERS),
    Param("cursor", "query", STRING, "the next_cursor of the previous page"),
    Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
)
BY = (query_enum("by", analytics.DIMENSIONS, "the dimension (default: tenant)"),
      Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "rows"))


def _endpoint(path: str, handler: Handler, summary: str, params: tuple[Param, ...] = PERIOD,
              answer: dict[str, object] = FIGURES) -> Endpoint:
    return Endpoint("GET", f"/api/analytics/{path}", handler, "viewer", Operation(summary, TAG, params,
                                                                                 responses=ok(answer)))


ENDPOINTS = [
    _endpoint("timeseries", timeseries, "Calls, cost and savings over time", answer=LISTING),
    _endpoint("breakdown", breakdown, "Totals by tenant, model, provider, endpoint, key, tag, …", (*PERIOD, *BY),
              LISTING),
    _endpoint("errors", errors, "Errors by code"),
    _endpoint("cache", cache, "Cache hit rates"),
    _endpoint("cost-quality", cost_quality, "Estimated and unpriced cost"),
    _endpoint("latency", latency, "Latency percentiles"),
    _endpoint("calls", calls, "Calls explorer: the ledger's rows, newest first", CALLS,
              obj({"rows": {"type": "array", "items": FIGURES}, "next_cursor": {"type": ["string", "null"]}})),
]
