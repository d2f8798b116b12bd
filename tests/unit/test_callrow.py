"""The typed ledger row: exactly the table's columns, immutable, and the rows built from it (finish, crash)."""

from __future__ import annotations

from typing import Any

import pytest

from core.callrow import COLUMN_NAMES, COLUMNS, CRASH_STATUS, ROW_FIELDS, LedgerRow, crash_row
from core.metrics import GatewayMetrics
from core.prices import load_seed
from core.usage import Usage
from gateway.calls import finish_row, ledger_row, start_row
from gateway.context import CallContext

PRICES = load_seed()


def full_row(**overrides: Any) -> dict[str, Any]:
    """A value for every column, by the kind COLUMNS gives it."""
    samples = {"str": "x", "int": 1, "bool": True, "float": 1.5, "money": "0.5", "list": ["a"], "time": 1_000_000}
    row = {name: samples[kind.removesuffix("?")] for name, _, kind in COLUMNS}
    row.update(overrides)
    return row


def served_call() -> CallContext:
    ctx = CallContext("req-1", "POST", "/v1/chat/completions")
    ctx.tenant_id, ctx.tenant_name, ctx.key_id = "t1", "acme", "k1"
    ctx.requested_model = ctx.served_model = "gpt-4o-mini"
    ctx.provider, ctx.status, ctx.upstream_called = "openai", 200, True
    ctx.usage = Usage(prompt_tokens=100, completion_tokens=20)
    ctx.tags = ["team:a"]
    return ctx


def test_row_fields_are_the_columns_in_table_order() -> None:
    assert ROW_FIELDS == COLUMN_NAMES
    assert "reused_request_id" in COLUMN_NAMES


def test_a_misspelt_or_missing_field_is_an_error_not_a_default() -> None:
    LedgerRow(**full_row())
    with pytest.raises(TypeError, match="savings_kinds"):
        LedgerRow(**full_row(savings_kinds="cache"))
    missing = full_row()
    del missing["policy_version"]
    with pytest.raises(TypeError, match="policy_version"):
        LedgerRow(**missing)


def test_row_is_immutable_and_converts_to_the_writers_dict() -> None:
    row = LedgerRow(**full_row(request_id="r-9"))
    with pytest.raises(AttributeError):
        row.request_id = "other"  # type: ignore[misc]
    out = row.as_dict()
    assert tuple(out) == COLUMN_NAMES and out["request_id"] == "r-9"
    assert out == full_row(request_id="r-9")


def test_finish_row_has_every_column() -> None:
    ctx = served_call()
    row = finish_row(ctx, PRICES, GatewayMetrics(), ctx.received_t + 0.2)
    assert tuple(row) == COLUMN_NAMES
    assert row["status"] == "ok" and row["prompt_tokens"] == 100 and row["tags"] == ["team:a"]
    assert ledger_row(ctx, PRICES, GatewayMetrics(), ctx.received_t + 0.2).as_dict() == row


def test_start_row_names_only_columns() -> None:
    # The spill's start record becomes a crash row's columns: a misspelt key there would be dropped.
    assert set(start_row(served_call())) <= set(COLUMN_NAMES)


def test_crash_row_has_every_column_whatever_the_start_record_held() -> None:
    start = start_row(served_call())
    start["a_field_from_a_newer_netra"] = 1
    del start["tags"]  # as an older start record might lack a column
    row = crash_row(start, start["received_at"] + 5_000)
    assert tuple(row) == COLUMN_NAMES
    assert row["status"] == row["error_code"] == CRASH_STATUS and row["http_status"] == 0
    assert row["tags"] == [] and row["reused_request_id"] == "" and row["first_byte_at"] is None
    assert row["cost_usd"] is None and row["savings_usd"] == "0" and row["latency_ms"] == 5.0
    assert row["tenant_name"] == "acme" and row["requested_model"] == "gpt-4o-mini"
