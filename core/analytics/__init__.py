"""Analytics over the savings ledger for the admin app: one function per question, each answering in well under
a second on ten million ledger rows (bench/analytics_bench.py measures it).

Every function takes a `run` callable, `(sql, parameters) -> rows` (ClickHouseStore.query, or the ledger
process's reader over its socket), so it blocks: async callers run it off the event loop. All SQL is
parameterised with ClickHouse `{name:Type}` parameters; no user value is ever formatted into SQL text.
Invalid arguments raise core.errors.InvalidParameter (a 400 for the admin API).

Exactness against speed, per question:

- Time series, breakdowns, errors by code, cache hit rates, the estimated share of cost and the unpriced calls
  read the rollups (llm_calls_hourly and llm_calls_daily from 0002; llm_calls_dims_hourly and the latency
  histograms from 0005; a daily table whenever the period is whole days and the buckets are not hours), never
  `llm_calls FINAL`: FINAL over ten million rows takes seconds. The rollups are exact sums of the rows
  inserted, with one documented edge: a row re-sent under a NEW insert token (never the ingest's own retries,
  which reuse the token and are dropped in every view) counts twice in them while `llm_calls FINAL` counts it
  once. Dashboards accept that edge; invoices and `netra ledger summary` read `llm_calls FINAL` and stay exact.
  Money sums are Decimal(38, 9), returned as Decimal; an unknown cost counts as 0 and in `unpriced_requests`.
- The rollups hold whole hours, so a `Query`'s period is whole UTC hours.
- Latency and time to first token come from per-hour histograms (5% wide buckets): percentiles within 2.5% of
  the exact ones, merged exactly over any period, where quantile states would be both approximate and slow.
- The calls explorer reads `llm_calls` itself (rows, not sums; across tenants through its time-ordered
  projection from 0005), without FINAL: the two copies of a call that the merge has not collapsed yet are
  adjacent in the page order and the second is dropped, which gives FINAL's answer at the cost of one page.
  A request-id prefix with neither tenant nor period reads every id (about 1.5 s on ten million rows).
"""

from __future__ import annotations

from core.analytics.breakdowns import DIMENSIONS, BreakdownRow, Dimension, ErrorReport, breakdown, errors_by_code
from core.analytics.calls import CallFilter, CallsPage, list_calls
from core.analytics.figures import Totals
from core.analytics.latency import LatencyReport, Percentiles, latency
from core.analytics.quality import CacheReport, CostQuality, cache_hit_rate, cost_quality
from core.analytics.query import Granularity, Query, Run
from core.analytics.series import SeriesPoint, timeseries

__all__ = [
    "DIMENSIONS",
    "BreakdownRow",
    "CacheReport",
    "CallFilter",
    "CallsPage",
    "CostQuality",
    "Dimension",
    "ErrorReport",
    "Granularity",
    "LatencyReport",
    "Percentiles",
    "Query",
    "Run",
    "SeriesPoint",
    "Totals",
    "breakdown",
    "cache_hit_rate",
    "cost_quality",
    "errors_by_code",
    "latency",
    "list_calls",
    "timeseries",
]
