"""The ledger row: one per call, the columns of ClickHouse `llm_calls`, and how a spilled row becomes one.

Rows travel as plain dicts (JSON in the spill file): timestamps as integer microseconds since the epoch
(UTC), money as decimal strings (or None when unknown), everything else as JSON scalars or lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

# (column, ClickHouse type, kind) in table order; `kind` says how a spilled value is converted for insert.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("request_id", "String", "str"),
    ("received_at", "DateTime64(6, 'UTC')", "time"),
    ("first_byte_at", "Nullable(DateTime64(6, 'UTC'))", "time?"),
    ("finished_at", "DateTime64(6, 'UTC')", "time"),
    ("tenant_id", "String", "str"),
    ("tenant_name", "LowCardinality(String)", "str"),
    ("key_id", "String", "str"),
    ("endpoint", "LowCardinality(String)", "str"),
    ("requested_model", "LowCardinality(String)", "str"),
    ("served_model", "LowCardinality(String)", "str"),
    ("provider", "LowCardinality(String)", "str"),
    ("status", "LowCardinality(String)", "str"),
    ("http_status", "UInt16", "int"),
    ("error_code", "LowCardinality(String)", "str"),
    ("stream", "Bool", "bool"),
    ("cache_outcome", "LowCardinality(String)", "str"),
    ("policy_id", "String", "str"),
    ("policy_version", "UInt32", "int"),
    ("prompt_tokens", "UInt32", "int"),
    ("completion_tokens", "UInt32", "int"),
    ("cached_prompt_tokens", "UInt32", "int"),
    ("cache_write_tokens", "UInt32", "int"),
    ("tokens_estimated", "Bool", "bool"),
    ("cost_usd", "Nullable(Decimal(18, 9))", "money?"),
    ("baseline_cost_usd", "Nullable(Decimal(18, 9))", "money?"),
    ("savings_usd", "Decimal(18, 9)", "money"),
    ("savings_kind", "LowCardinality(String)", "str"),
    ("price_version", "LowCardinality(String)", "str"),
    ("latency_ms", "Float64", "float"),
    ("ttft_ms", "Nullable(Float64)", "float?"),
    ("upstream_attempts", "UInt8", "int"),
    ("request_hash", "String", "str"),
    ("prompt_chars", "UInt32", "int"),
    ("tags", "Array(String)", "list"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _, _ in COLUMNS)

CRASH_STATUS = "gateway_crash"

TIME_COLUMNS = tuple(name for name, _, kind in COLUMNS if kind.startswith("time"))
_FINISHED_AT = re.compile(rb'"finished_at":"(\d+)\.(\d{6})"')


def _seconds(us: int) -> str:
    # Exact decimal seconds, which ClickHouse reads into DateTime64(6); a float would lose the last digits.
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def spill_form(row: dict[str, Any]) -> dict[str, Any]:
    """A finished row as it is spilled and inserted: timestamps as exact decimal-second strings.

    In this form a spilled line is already a ClickHouse JSONEachRow line, so ingest sends the bytes as they
    are, without parsing them again.
    """
    converted = {k: _seconds(v) for k in TIME_COLUMNS if isinstance(v := row.get(k), int)}
    return {**row, **converted} if converted else row


def micros(value: Any) -> int | None:
    """A timestamp as integer microseconds, from either form (int µs, or decimal-second string)."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and "." in value:
        seconds, _, fraction = value.partition(".")
        if seconds.isdigit() and fraction.isdigit() and len(fraction) == 6:
            return int(seconds) * 1_000_000 + int(fraction)
    return None


def finished_us(line: bytes) -> int | None:
    """`finished_at` of a spilled row's JSON, read without parsing the whole line."""
    match = _FINISHED_AT.search(line)
    return int(match.group(1)) * 1_000_000 + int(match.group(2)) if match else None


def to_json_each_row(rows: Sequence[bytes | dict[str, Any]]) -> bytes:
    """Rows as ClickHouse JSONEachRow; spilled rows (bytes) pass as they are."""
    return b"\n".join(row if isinstance(row, bytes) else orjson.dumps(spill_form(row)) for row in rows)


def crash_row(start: dict[str, Any], finished_at_us: int) -> dict[str, Any]:
    """The row for a call whose process died before it finished: what was known at its start, marked crashed."""
    row = dict(start)
    row.update(
        finished_at=max(finished_at_us, int(start.get("received_at") or 0)),
        status=CRASH_STATUS,
        http_status=0,
        error_code=CRASH_STATUS,
        cost_usd=None,
        baseline_cost_usd=None,
        savings_usd="0",
        savings_kind="",
        tokens_estimated=True,
    )
    row["latency_ms"] = (row["finished_at"] - int(start.get("received_at") or 0)) / 1000.0
    return row
