"""The ledger row: one per call, the columns of ClickHouse `llm_calls`, and how a spilled row becomes one.

The gateway builds a `LedgerRow` (typed, frozen, exactly the table's columns: a misspelt or missing field is a
TypeError, not a silent default) and hands the writer its `as_dict()`. Rows travel as plain dicts (JSON in the
spill file): timestamps as integer microseconds since the epoch (UTC), money as decimal strings (or None when
unknown), everything else as JSON scalars or lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

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
    ("reused_request_id", "String", "str"),
    ("price_version", "LowCardinality(String)", "str"),
    ("latency_ms", "Float64", "float"),
    ("ttft_ms", "Nullable(Float64)", "float?"),
    ("upstream_attempts", "UInt8", "int"),
    ("request_hash", "String", "str"),
    ("prompt_chars", "UInt32", "int"),
    ("tags", "Array(String)", "list"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _, _ in COLUMNS)


class LedgerRow(NamedTuple):
    """One finished call as a row of `llm_calls`: every column, in table order, none optional to state.

    Immutable and slotted. A NamedTuple rather than a frozen dataclass: built with keywords it costs a plain
    slotted class's time, where a frozen dataclass pays an object.__setattr__ per field (about twice as long).
    Build it with keywords only; the field order is the table's, not something to rely on.
    """

    request_id: str
    received_at: int
    first_byte_at: int | None
    finished_at: int
    tenant_id: str
    tenant_name: str
    key_id: str
    endpoint: str
    requested_model: str
    served_model: str
    provider: str
    status: str
    http_status: int
    error_code: str
    stream: bool
    cache_outcome: str
    policy_id: str
    policy_version: int
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    cache_write_tokens: int
    tokens_estimated: bool
    cost_usd: str | None
    baseline_cost_usd: str | None
    savings_usd: str
    savings_kind: str
    reused_request_id: str
    price_version: str
    latency_ms: float
    ttft_ms: float | None
    upstream_attempts: int
    request_hash: str
    prompt_chars: int
    tags: list[str]

    def as_dict(self) -> dict[str, Any]:
        """The row as the writer takes it (column → value); values are shared, not copied."""
        return dict(zip(ROW_FIELDS, self, strict=True))


ROW_FIELDS: tuple[str, ...] = LedgerRow._fields
# What a column holds when the record it is rebuilt from does not say (a crash row from an older start record).
_EMPTY: Mapping[str, Any] = MappingProxyType(
    {"str": "", "int": 0, "bool": False, "float": 0.0, "money": "0", "time": 0}
)

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


def _blank(kind: str) -> Any:
    if kind.endswith("?"):  # nullable
        return None
    return [] if kind == "list" else _EMPTY[kind]


def crash_row(start: dict[str, Any], finished_at_us: int) -> dict[str, Any]:
    """The row for a call whose process died before it finished: what was known at its start, marked crashed.

    Built as a `LedgerRow`, so it has every column: keys of the start record that are not columns (written
    by another Netra version) are left out, columns it lacks take their empty value.
    """
    received = int(start.get("received_at") or 0)
    finished = max(finished_at_us, received)
    known = {name: start[name] if name in start else _blank(kind) for name, _, kind in COLUMNS}
    known.update(
        received_at=received, finished_at=finished, status=CRASH_STATUS, http_status=0, error_code=CRASH_STATUS,
        cost_usd=None, baseline_cost_usd=None, savings_usd="0", savings_kind="", reused_request_id="",
        tokens_estimated=True, latency_ms=(finished - received) / 1000.0,
    )
    return LedgerRow(**known).as_dict()
