"""Ledger rows for the invoice tests: built as the gateway builds them (`LedgerRow`), every savings kind."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from core.callrow import LedgerRow
from core.ledger_report import to_micros

KINDS = ("", "cache", "coalesce", "route", "batch")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "")


def ledger_row(
    request_id: str, tenant_id: str, tenant_name: str, received: datetime, *, kind: str = "", model: str = "gpt-4o",
    baseline: str | None = "0.010000000", cost: str | None = "0.010000000", price_version: str = "2026-11",
    status: str = "ok", http_status: int = 200,
) -> dict[str, Any]:
    """One row; savings = baseline - cost when both are known, else 0 (as the ledger records an unpriced call)."""
    savings = "0" if baseline is None or cost is None else f"{Decimal(baseline) - Decimal(cost):f}"
    at = to_micros(received)
    return LedgerRow(
        request_id=request_id, received_at=at, first_byte_at=at + 30_000, finished_at=at + 80_000,
        tenant_id=tenant_id, tenant_name=tenant_name, key_id="key_x", endpoint="chat/completions",
        requested_model=model, served_model="gpt-4o-mini" if kind == "route" else model, provider="openai",
        status=status, http_status=http_status, error_code="", stream=False, cache_outcome="bypass", policy_id="",
        policy_version=0, prompt_tokens=100, completion_tokens=20, cached_prompt_tokens=0, cache_write_tokens=0,
        tokens_estimated=False, cost_usd=cost, baseline_cost_usd=baseline, savings_usd=savings, savings_kind=kind,
        reused_request_id="", price_version=price_version, latency_ms=80.0, ttft_ms=None, upstream_attempts=1,
        request_hash="h", prompt_chars=400, tags=[],
    ).as_dict()


def _nanos(rng: random.Random, top: int) -> str:
    return f"{Decimal(rng.randrange(0, top)).scaleb(-9):f}"


def month_rows(
    rng: random.Random, tenant_id: str, tenant_name: str, start: datetime, count: int, prefix: str = "r"
) -> list[dict[str, Any]]:
    """`count` random rows in the 30 days from `start`: every savings kind, unpriced and failed calls among them."""
    rows = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        received = start + timedelta(seconds=rng.randrange(0, 30 * 86_400), microseconds=rng.randrange(1_000_000))
        cost = _nanos(rng, 30_000_000)
        saved = _nanos(rng, 40_000_000) if kind else "0"
        baseline: str | None = f"{Decimal(cost) + Decimal(saved):f}"
        cost_or_none: str | None = "0" if kind in ("cache", "coalesce") else cost
        if kind in ("cache", "coalesce"):
            baseline = saved
        if i % 17 == 3:  # an unpriced model
            baseline, cost_or_none = None, "0" if kind in ("cache", "coalesce") else None
        rows.append(ledger_row(
            f"{prefix}-{i:05d}", tenant_id, tenant_name, received, kind=kind, model=rng.choice(MODELS),
            baseline=baseline, cost=cost_or_none, price_version=rng.choice(("2026-10", "2026-11")),
        ))
    return rows
