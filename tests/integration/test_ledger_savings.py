"""Savings in a migrated chDB ledger: rows the gateway builds match the table; the summary adds them up by kind."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import ClickHouseError

from core.callrow import COLUMNS, ROW_FIELDS, crash_row, to_json_each_row
from core.clickhouse import CALLS_TABLE, INSERT_SETTINGS, ClickHouseStore
from core.ledger_report import SAVINGS_KINDS, format_summary, summary
from core.metrics import GatewayMetrics
from core.prices import ModelPrice, load_seed
from core.usage import Usage
from gateway.calls import finish_row, start_row
from gateway.context import CallContext

PRICES = load_seed()
STRICT = {**INSERT_SETTINGS, "input_format_skip_unknown_fields": 0}


def rate(model: str) -> ModelPrice:
    price = PRICES.price_for(model)
    assert price is not None
    return price


def call(rid: str, tenant: str = "acme", model: str = "gpt-4o-mini", **fields: Any) -> CallContext:
    """A served chat call, with `fields` (outcome, usage, policy, savings kind...) set on its context."""
    ctx = CallContext(rid, "POST", "/v1/chat/completions")
    ctx.tenant_id, ctx.tenant_name, ctx.key_id, ctx.provider, ctx.status = f"id-{tenant}", tenant, "k1", "openai", 200
    ctx.requested_model = ctx.served_model = model
    ctx.upstream_called = True
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


def reused(rid: str, kind: str, source: str, usage: Usage, **fields: Any) -> CallContext:
    outcome = "hit" if kind == "cache" else "coalesced"
    return call(
        rid, cache_outcome=outcome, savings_kind=kind, policy_id="pol-c", policy_version=2, reused_request_id=source,
        upstream_called=False, usage=usage, **fields,
    )


def rows_of(contexts: list[CallContext]) -> list[dict[str, Any]]:
    metrics = GatewayMetrics()
    return [finish_row(ctx, PRICES, metrics, ctx.received_t + 0.05) for ctx in contexts]


def describe(store: ClickHouseStore) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind, *_ in store.query(f"DESCRIBE TABLE {CALLS_TABLE}")]


def test_the_row_is_exactly_the_migrated_tables_columns(clickhouse_store: ClickHouseStore) -> None:
    columns = describe(clickhouse_store)
    assert [name for name, _ in columns] == list(ROW_FIELDS)
    assert columns == [(name, kind) for name, kind, _ in COLUMNS]


def test_built_rows_insert_with_unknown_fields_refused(clickhouse_store: ClickHouseStore) -> None:
    """Every key of a finished and a crash row is a column and every value fits it, with nothing skipped."""
    hit = reused("r-hit", "cache", "r-src", Usage(prompt_tokens=10, completion_tokens=5), stream=True, tags=["a"])
    crashed = crash_row(start_row(call("r-crash")), hit.received_us + 1000)
    body = to_json_each_row([*rows_of([hit]), crashed])
    clickhouse_store.client.raw_insert(CALLS_TABLE, None, body, settings=STRICT, fmt="JSONEachRow")
    got = dict(clickhouse_store.query(f"SELECT request_id, reused_request_id FROM {CALLS_TABLE} FINAL"))
    assert got == {"r-hit": "r-src", "r-crash": ""}
    # The same strict insert refuses a row with a key the table does not have.
    misspelt = to_json_each_row([{**rows_of([call("r-bad")])[0], "savings_kinds": "cache"}])
    with pytest.raises(ClickHouseError):
        clickhouse_store.client.raw_insert(CALLS_TABLE, None, misspelt, settings=STRICT, fmt="JSONEachRow")


def scripted_mix() -> list[CallContext]:
    """Hits, coalesced calls, misses that filled the cache, plain calls and errors, in two tenants."""
    a = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=200)
    b = Usage(prompt_tokens=40, completion_tokens=10)
    return [
        call("m1", cache_outcome="miss", policy_id="pol-c", policy_version=2, usage=a),
        reused("h1", "cache", "m1", a),
        reused("h2", "cache", "m1", a, stream=True),
        call("m2", cache_outcome="miss", policy_id="pol-c", policy_version=2, usage=b),
        reused("c1", "coalesce", "m2", b),
        reused("c2", "coalesce", "m2", b),
        reused("c3", "coalesce", "m2", b, tenant="globex"),
        call("p1", usage=b, model="gpt-4o"),
        reused("h3", "cache", "x9", b, model="house-model"),  # unpriced: served free, saving unknown
        reused("c4", "coalesce", "m2", b, cancelled=True),  # its client left: nothing paid, nothing claimed
        call("e1", status=502, outcome="upstream_error", error_code="upstream_error"),
        call("e2", status=429, outcome="rate_limited", error_code="rate_limit_exceeded", upstream_called=False),
    ]


def test_summary_savings_by_kind_equal_the_sums_by_hand(clickhouse_store: ClickHouseStore) -> None:
    clickhouse_store.insert_rows(rows_of(scripted_mix()), "mix")
    mini, big = rate("gpt-4o-mini"), rate("gpt-4o")
    assert mini.cached_input is not None
    a = 800 * mini.input + 200 * mini.cached_input + 500 * mini.output
    b = 40 * mini.input + 10 * mini.output
    big_b = 40 * big.input + 10 * big.output
    report = summary(clickhouse_store, tenant=None, since=None, until=None)
    assert report.savings_by_kind == {"cache": 2 * a, "coalesce": 3 * b, "route": 0, "batch": 0}
    assert report.requests_by_savings_kind == {"cache": 3, "coalesce": 3, "route": 0, "batch": 0}
    assert report.cost_usd == a + b + big_b  # the two misses and the plain call; errors and reuses paid nothing
    assert report.baseline_cost_usd == 3 * a + 4 * b + big_b
    assert report.savings_usd == 2 * a + 3 * b == report.baseline_cost_usd - report.cost_usd
    assert report.requests == 12 and report.unpriced_requests == 0
    assert report.by_status == {
        "ok": 3, "cache_hit": 3, "coalesced": 3, "client_cancelled": 1, "upstream_error": 1, "rate_limited": 1,
    }
    acme = summary(clickhouse_store, tenant="acme", since=None, until=None)
    assert acme.savings_by_kind["coalesce"] == 2 * b and acme.requests_by_savings_kind["coalesce"] == 2

    doc = json.loads(json.dumps(report.to_dict()))
    assert {k: Decimal(v) for k, v in doc["savings_by_kind"].items()} == report.savings_by_kind
    assert doc["requests_by_savings_kind"] == {"cache": 3, "coalesce": 3, "route": 0, "batch": 0}
    lines = format_summary(report).splitlines()
    for kind in SAVINGS_KINDS:
        line = next(line for line in lines if line.strip().startswith(f"{kind} ("))
        assert line.split()[-1] == "$" + f"{report.savings_by_kind[kind].quantize(Decimal('0.000001')):,f}"
    assert any("cache (3 calls)" in line for line in lines)
