"""Reports over the savings ledger: exact totals from `llm_calls FINAL`, and the hourly and daily rollups.

Every function here reads through a `LedgerReader` (core/ledger_reader.py; a `ClickHouseStore` is one) and blocks;
async callers run them in a thread. Times are read from ClickHouse as integer epochs and turned into UTC datetimes
here, because chDB and the HTTP client disagree on time zones.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from core.ledger_reader import LedgerReader

SAVINGS_KINDS = ("cache", "coalesce", "route", "batch")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_AGE = re.compile(r"(\d+)([smhdw])")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WHEN_HELP = "use a date (2026-11-01), an ISO-8601 time (2026-11-01T12:00:00Z) or an age (7d, 24h, 30m)"


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_micros(value: datetime) -> int:
    """Integer microseconds since the epoch, exactly (no float rounding)."""
    return (as_utc(value) - _EPOCH) // timedelta(microseconds=1)


def from_micros(us: int) -> datetime:
    """The UTC datetime of integer microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=us)


def parse_when(text: str, now: datetime) -> datetime:
    """A UTC time from a date, an ISO-8601 timestamp, or an age before `now` such as 7d, 24h, 30m."""
    value = text.strip()
    age = _AGE.fullmatch(value)
    try:
        if age is not None:
            return as_utc(now) - timedelta(seconds=int(age[1]) * _AGE_SECONDS[age[2]])
        return as_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        raise ValueError(f"cannot read {text!r} as a time: {_WHEN_HELP}") from None


def ledger_filter(tenant: str | None, since: datetime | None, until: datetime | None) -> tuple[str, dict[str, Any]]:
    """A WHERE clause (or "") on llm_calls for a tenant name and a [since, until) window, with its parameters."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if tenant is not None:
        clauses.append("tenant_name = {tenant:String}")
        params["tenant"] = tenant
    if since is not None:
        clauses.append("received_at >= fromUnixTimestamp64Micro({since_us:Int64}, 'UTC')")
        params["since_us"] = to_micros(since)
    if until is not None:
        clauses.append("received_at < fromUnixTimestamp64Micro({until_us:Int64}, 'UTC')")
        params["until_us"] = to_micros(until)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _money(value: Decimal) -> str:
    return f"{value:.9f}"


@dataclass(frozen=True)
class LedgerSummary:
    """Exact totals of the ledger rows of one tenant (or all) in a [since, until) window."""

    tenant: str | None
    since: datetime | None
    until: datetime | None
    requests: int
    by_status: dict[str, int]
    by_http_status: dict[int, int]
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal
    baseline_cost_usd: Decimal
    savings_usd: Decimal
    savings_by_kind: dict[str, Decimal]
    requests_by_savings_kind: dict[str, int]
    unpriced_requests: int
    estimated_token_rows: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: Decimals as strings, times as ISO-8601 UTC, HTTP statuses as string keys."""
        out = asdict(self)
        for name in ("since", "until"):
            out[name] = None if out[name] is None else out[name].isoformat().replace("+00:00", "Z")
        for name in ("cost_usd", "baseline_cost_usd", "savings_usd"):
            out[name] = _money(out[name])
        out["savings_by_kind"] = {kind: _money(v) for kind, v in self.savings_by_kind.items()}
        out["by_http_status"] = {str(code): n for code, n in self.by_http_status.items()}
        return out


# (LedgerSummary field, aggregate over llm_calls FINAL); rows are grouped by status, http_status, savings_kind.
_TOTALS: tuple[tuple[str, str], ...] = (
    ("requests", "count()"),
    ("prompt_tokens", "sum(prompt_tokens)"),
    ("completion_tokens", "sum(completion_tokens)"),
    ("cached_prompt_tokens", "sum(cached_prompt_tokens)"),
    ("cache_write_tokens", "sum(cache_write_tokens)"),
    ("cost_usd", "sum(toDecimal128(ifNull(cost_usd, 0), 9))"),
    ("baseline_cost_usd", "sum(toDecimal128(ifNull(baseline_cost_usd, 0), 9))"),
    ("savings_usd", "sum(toDecimal128(savings_usd, 9))"),
    ("unpriced_requests", "countIf(cost_usd IS NULL)"),
    ("estimated_token_rows", "countIf(tokens_estimated)"),
)
_MONEY_TOTALS = frozenset({"cost_usd", "baseline_cost_usd", "savings_usd"})


def summary(
    store: LedgerReader, *, tenant: str | None, since: datetime | None, until: datetime | None
) -> LedgerSummary:
    """Exact ledger totals from `llm_calls FINAL`, filtered by tenant name and received_at in [since, until)."""
    where, params = ledger_filter(tenant, since, until)
    aggregates = ", ".join(expr for _, expr in _TOTALS)
    groups = store.query(
        f"SELECT status, http_status, savings_kind, {aggregates} FROM llm_calls FINAL{where} "
        "GROUP BY status, http_status, savings_kind",
        params,
    )
    since, until = (None if when is None else as_utc(when) for when in (since, until))
    return LedgerSummary(tenant=tenant, since=since, until=until, **_fold(groups))


def _fold(groups: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """Add the per-(status, http status, savings kind) groups up into the summary's fields."""
    by_status: Counter[str] = Counter()
    by_http: Counter[int] = Counter()
    kinds: dict[str, Decimal] = {kind: Decimal(0) for kind in SAVINGS_KINDS}
    kind_requests: dict[str, int] = dict.fromkeys(SAVINGS_KINDS, 0)
    totals: dict[str, Any] = {name: Decimal(0) if name in _MONEY_TOTALS else 0 for name, _ in _TOTALS}
    with localcontext() as ctx:
        ctx.prec = 60  # Decimal(38, 9) sums must not round
        for status, http_status, kind, *values in groups:
            fields = dict(zip((name for name, _ in _TOTALS), values, strict=True))
            by_status[status] += fields["requests"]
            by_http[http_status] += fields["requests"]
            if kind:
                kinds[kind] = kinds.get(kind, Decimal(0)) + fields["savings_usd"]
                kind_requests[kind] = kind_requests.get(kind, 0) + fields["requests"]
            for name, value in fields.items():
                totals[name] += value
    return dict(
        totals,
        by_status=dict(by_status.most_common()),
        by_http_status=dict(sorted(by_http.items())),
        savings_by_kind=kinds,
        requests_by_savings_kind=kind_requests,
    )


def _dollars(value: Decimal) -> str:
    return "$" + f"{value.quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP):,f}"


def _window(report: LedgerSummary) -> str:
    since = "the beginning" if report.since is None else report.since.isoformat().replace("+00:00", "Z")
    until = "now" if report.until is None else report.until.isoformat().replace("+00:00", "Z")
    return f"ledger for {report.tenant or 'all tenants'}, from {since} until {until} (exclusive)"


def _lines(pairs: Iterable[tuple[str, object]], indent: int = 2) -> list[str]:
    return [f"{' ' * indent}{label:<{34 - indent}}{value:>20}" for label, value in pairs]


def _traffic_lines(report: LedgerSummary) -> list[str]:
    by_status = _lines((status, f"{n:,}") for status, n in report.by_status.items())
    by_http = _lines((str(code), f"{n:,}") for code, n in report.by_http_status.items())
    return ["requests by status", *by_status, "requests by HTTP status", *by_http]


def _token_lines(report: LedgerSummary) -> list[str]:
    tokens = [
        ("prompt", report.prompt_tokens),
        ("completion", report.completion_tokens),
        ("cached prompt", report.cached_prompt_tokens),
        ("cache write", report.cache_write_tokens),
    ]
    return ["tokens", *_lines((label, f"{n:,}") for label, n in tokens)]


def _money_lines(report: LedgerSummary) -> list[str]:
    money = [
        ("baseline (list price, as sent)", report.baseline_cost_usd),
        ("cost (paid upstream)", report.cost_usd),
        ("savings", report.savings_usd),
    ]
    calls = report.requests_by_savings_kind
    by_kind = ((f"{kind} ({calls.get(kind, 0):,} calls)", _dollars(v)) for kind, v in report.savings_by_kind.items())
    kinds = _lines(by_kind, indent=4)
    return ["money (USD)", *_lines((label, _dollars(v)) for label, v in money), *kinds]


def format_summary(report: LedgerSummary) -> str:
    """A text table of a summary for the terminal."""
    counts = [
        ("unpriced requests (cost unknown)", f"{report.unpriced_requests:,}"),
        ("rows with estimated tokens", f"{report.estimated_token_rows:,}"),
    ]
    total = _lines([("TOTAL requests", f"{report.requests:,}")], indent=0)
    body = [*_traffic_lines(report), *_token_lines(report), *_money_lines(report), *_lines(counts, indent=0)]
    return "\n".join([_window(report), *body, "-" * 54, *total])


# Sums a rollup row carries, in table order; both rollups have them all.
ROLLUP_SUMS = (
    "requests",
    "errors",
    "cache_hits",
    "unpriced_requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
    "cache_write_tokens",
    "cost_usd",
    "baseline_cost_usd",
    "savings_usd",
    "savings_cache_usd",
    "savings_coalesce_usd",
    "savings_route_usd",
    "savings_batch_usd",
)
_QUANTILE_STATES = ("latency_ms", "ttft_ms")
_QUANTILE_LEVELS = ("p50", "p90", "p99")


def _read_rollup(
    store: LedgerReader, table: str, keys: Sequence[tuple[str, str]], tenant: str | None, extra: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Rows of a rollup merged per key: keys, anyLast(tenant_name), the sums, then `extra` aggregates."""
    group = ", ".join(name for name, _ in keys)
    columns = [expr for _, expr in keys] + ["anyLast(tenant_name)"]
    columns += [f"sum({name})" for name in ROLLUP_SUMS] + list(extra)
    where = " WHERE tenant_name = {tenant:String}" if tenant is not None else ""
    sql = f"SELECT {', '.join(columns)} FROM {table}{where} GROUP BY {group} ORDER BY {group}"
    return store.query(sql, {"tenant": tenant} if tenant is not None else None)


def _named(names: Sequence[str], row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(names, row, strict=True))


def _quantiles(prefix: str, values: Sequence[float]) -> dict[str, float | None]:
    """A merged quantiles array as {prefix_p50: …}; NaN (no values) becomes None."""
    return {f"{prefix}_{lvl}": None if math.isnan(v) else v for lvl, v in zip(_QUANTILE_LEVELS, values, strict=True)}


_HOURLY_KEYS = (
    ("tenant_id", "tenant_id"),
    ("hour", "toUnixTimestamp(hour)"),
    ("served_model", "served_model"),
    ("provider", "provider"),
    ("requested_model", "requested_model"),
)


def hourly_rollup(store: LedgerReader, tenant: str | None = None) -> list[dict[str, Any]]:
    """The hourly rollup merged per (tenant, hour, served model, provider, requested model), with percentiles."""
    extra = [f"quantilesMerge(0.5, 0.9, 0.99)({name}_quantiles)" for name in _QUANTILE_STATES]
    names = [name for name, _ in _HOURLY_KEYS] + ["tenant_name", *ROLLUP_SUMS]
    out: list[dict[str, Any]] = []
    for row in _read_rollup(store, "llm_calls_hourly", _HOURLY_KEYS, tenant, extra):
        item = _named(names, row[: len(names)])
        item["hour"] = datetime.fromtimestamp(item["hour"], tz=UTC)
        for state, values in zip(_QUANTILE_STATES, row[len(names) :], strict=True):
            item.update(_quantiles(state, values))
        out.append(item)
    return out


def daily_rollup(store: LedgerReader, tenant: str | None = None) -> list[dict[str, Any]]:
    """The daily per-tenant rollup (the invoice's source of totals), merged per (tenant, day)."""
    keys = (("tenant_id", "tenant_id"), ("day", "day"))
    names = ["tenant_id", "day", "tenant_name", *ROLLUP_SUMS]
    return [_named(names, row) for row in _read_rollup(store, "llm_calls_daily", keys, tenant, [])]
