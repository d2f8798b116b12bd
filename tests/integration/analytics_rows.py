"""A known set of ledger rows for the analytics tests, and the figures they must give, computed in Python."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.analytics import Query, Totals
from core.callrow import LedgerRow
from core.clickhouse import ClickHouseStore
from core.ledger_report import from_micros, to_micros

T0 = datetime(2026, 10, 30, tzinfo=UTC)  # a Friday: the period crosses a week and the October/November partitions
PERIOD_END = T0 + timedelta(days=4)
TENANTS = (("t-acme", "acme"), ("t-o'brien\\x", "o'brien \"quoted\""))
MODELS = (  # (requested, served, provider, priced)
    ("gpt-4o", "gpt-4o", "openai", True),
    ("gpt-4o", "gpt-4o-mini", "openai", True),
    ("claude-sonnet", "claude-sonnet", "anthropic", True),
    ("local\\llama", "local\\llama", "vllm", False),
)
OUTCOMES = (  # (status, http_status, cache_outcome, savings_kind, error_code)
    ("ok", 200, "miss", "", ""),
    ("ok", 200, "miss", "route", ""),
    ("cache_hit", 200, "hit", "cache", ""),
    ("coalesced", 200, "coalesced", "coalesce", ""),
    ("ok", 200, "bypass", "batch", ""),
    ("upstream_error", 502, "miss", "", "upstream_error"),
    ("upstream_error", 200, "miss", "", "upstream_timeout"),  # a stream that failed in-band after its 200
    ("rate_limited", 429, "bypass", "", "rate_limit_exceeded"),
    ("client_cancelled", 499, "miss", "", ""),
    ("gateway_crash", 0, "", "", "gateway_crash"),
    ("invalid_request", 400, "", "", "invalid_type"),
)
TAGS: tuple[list[str], ...] = ([], ["team:search"], ["team:a,b", 'say "hi"'], ["x", "x"], ["back\\slash'q"])
ENDPOINTS = ("chat/completions", "embeddings", "responses")


def money(rng: random.Random) -> str:
    """A random amount with nine decimals."""
    return f"{Decimal(rng.randrange(0, 5 * 10**7)).scaleb(-9):f}"


def make_row(i: int, rng: random.Random, **overrides: Any) -> dict[str, Any]:
    """One ledger row, built as the gateway builds it (a LedgerRow), received within two hours of the period."""
    tenant_id, tenant_name = rng.choice(TENANTS)
    requested, served, provider, priced = rng.choice(MODELS)
    status, http_status, cache_outcome, kind, code = rng.choice(OUTCOMES)
    span = int((PERIOD_END - T0).total_seconds() + 4 * 3600) * 1_000_000
    received = to_micros(T0 - timedelta(hours=2)) + rng.randrange(0, span)
    stream = rng.random() < 0.5
    cost = None if status == "gateway_crash" or not priced or rng.random() < 0.1 else money(rng)
    savings = money(rng) if kind and cost is not None else "0"
    latency = rng.uniform(5, 3000)
    fields: dict[str, Any] = dict(
        request_id=f"req-{i:05d}", received_at=received, first_byte_at=received + 40_000,
        finished_at=received + int(latency * 1000), tenant_id=tenant_id, tenant_name=tenant_name,
        key_id=f"key-{tenant_id}-{rng.randrange(3)}", endpoint=rng.choice(ENDPOINTS), requested_model=requested,
        served_model=served, provider=provider, status=status, http_status=http_status, error_code=code,
        stream=stream, cache_outcome=cache_outcome, policy_id="", policy_version=0,
        prompt_tokens=rng.randrange(0, 5000), completion_tokens=rng.randrange(0, 2000),
        cached_prompt_tokens=rng.randrange(0, 500), cache_write_tokens=0, tokens_estimated=rng.random() < 0.25,
        cost_usd=cost, baseline_cost_usd=None if cost is None else f"{Decimal(cost) + Decimal(savings):f}",
        savings_usd=savings, savings_kind=kind, reused_request_id="", price_version="2026-10", latency_ms=latency,
        ttft_ms=rng.uniform(5, 500) if stream and http_status == 200 else None, upstream_attempts=1,
        request_hash=f"h{i}", prompt_chars=100, tags=list(rng.choice(TAGS)),
    )
    fields.update(overrides)
    return LedgerRow(**fields).as_dict()


def insert(store: ClickHouseStore, count: int = 400, batches: int = 4, seed: int = 11) -> list[dict[str, Any]]:
    """Insert `count` rows in `batches` blocks (so the rollups hold several unmerged parts); returns the rows."""
    rng = random.Random(seed)
    rows = [make_row(i, rng) for i in range(count)]
    size = math.ceil(count / batches)
    for number in range(batches):
        store.insert_rows(rows[number * size : (number + 1) * size], f"analytics-{seed}-{number}")
    return rows


def in_query(row: dict[str, Any], query: Query) -> bool:
    """Whether a row belongs to the query's period and tenant."""
    received = from_micros(row["received_at"])
    tenant_ok = query.tenant_id is None or row["tenant_id"] == query.tenant_id
    return tenant_ok and query.start <= received < query.end


def dec(value: str | None) -> Decimal:
    """A money string as Decimal, NULL as 0 (as the rollups sum it)."""
    return Decimal(0) if value is None else Decimal(value)


def is_error(row: dict[str, Any]) -> bool:
    """The rollups' definition of a failed call."""
    return row["http_status"] >= 400 or row["status"] in ("gateway_crash", "client_cancelled")


def totals(rows: list[dict[str, Any]]) -> Totals:
    """The Totals of these rows."""
    return Totals(
        requests=len(rows), errors=sum(is_error(r) for r in rows),
        unpriced_requests=sum(r["cost_usd"] is None for r in rows),
        prompt_tokens=sum(r["prompt_tokens"] for r in rows),
        completion_tokens=sum(r["completion_tokens"] for r in rows),
        cost_usd=sum((dec(r["cost_usd"]) for r in rows), Decimal(0)),
        baseline_cost_usd=sum((dec(r["baseline_cost_usd"]) for r in rows), Decimal(0)),
        savings_usd=sum((dec(r["savings_usd"]) for r in rows), Decimal(0)),
    )


def grouped(rows: Iterable[dict[str, Any]], keys: Callable[[dict[str, Any]], Iterable[Any]]) -> dict[Any, list[Any]]:
    """Rows per key; a row with several keys (tags) lands under each."""
    out: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        for key in keys(row):
            out[key].append(row)
    return dict(out)


def bucket(row: dict[str, Any], granularity: str) -> datetime:
    """The start of a row's bucket, computed independently of core.analytics."""
    hour = from_micros(row["received_at"]).replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    starts = {"hour": hour, "day": day, "week": day - timedelta(days=day.weekday()), "month": day.replace(day=1)}
    return starts[granularity]


DIMENSION_VALUES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "tenant": lambda r: [r["tenant_id"]],
    "requested_model": lambda r: [r["requested_model"]],
    "served_model": lambda r: [r["served_model"]],
    "provider": lambda r: [r["provider"]],
    "endpoint": lambda r: [r["endpoint"]],
    "key": lambda r: [r["key_id"]],
    "tag": lambda r: sorted(set(r["tags"])) or [""],
    "savings_kind": lambda r: [r["savings_kind"]],
    "status": lambda r: [r["status"]],
    "cache_outcome": lambda r: [r["cache_outcome"]],
    "error_code": lambda r: [r["error_code"]],
}


def nearest_rank(values: list[float], level: float) -> float:
    """The exact nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(level * len(ordered))) - 1]
