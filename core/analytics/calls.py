"""The calls explorer: ledger rows matching filters, newest first, a page at a time (keyset pagination).

A page ends with a cursor naming its last row's (received_at, request_id); the next page holds the rows
strictly before it in (received_at DESC, request_id DESC) order, so rows inserted meanwhile never shift a page:
each row that existed when the walk began is seen exactly once. Rows come from `llm_calls` without FINAL, but
two copies of one call (same key, not merged yet) sit side by side in that order and the second is dropped.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.analytics.query import Run, utc
from core.callrow import COLUMNS
from core.errors import InvalidParameter
from core.ledger_report import from_micros, to_micros

MAX_LIMIT = 500
# Timestamps leave ClickHouse as integer microseconds (chDB and HTTP clients disagree on time zones).
_SELECT = ", ".join(
    f"toUnixTimestamp64Micro({name})" if kind.startswith("time") else name for name, _, kind in COLUMNS
)
_TIMES = frozenset(name for name, _, kind in COLUMNS if kind.startswith("time"))
_MONEY = frozenset(name for name, _, kind in COLUMNS if kind.startswith("money"))
_STRING_FILTERS = (  # (CallFilter field, condition on llm_calls)
    ("tenant_id", "tenant_id = {tenant_id:String}"),
    ("model", "(requested_model = {model:String} OR served_model = {model:String})"),
    ("status", "status = {status:String}"),
    ("savings_kind", "savings_kind = {savings_kind:String}"),
    ("tag", "has(tags, {tag:String})"),
    ("request_id_prefix", "startsWith(request_id, {request_id_prefix:String})"),
)


@dataclass(frozen=True)
class CallFilter:
    """Which calls to list: received in [start, end) (any precision, either open), and the other fields exactly.

    `model` matches the requested or the served model; `tag` one of the call's tags.
    """

    start: datetime | None = None
    end: datetime | None = None
    tenant_id: str | None = None
    model: str | None = None
    status: str | None = None
    savings_kind: str | None = None
    tag: str | None = None
    request_id_prefix: str | None = None

    def where(self) -> tuple[list[str], dict[str, Any]]:
        """Conditions on llm_calls and their parameters."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for name, condition in _STRING_FILTERS:
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str):
                    raise InvalidParameter(f"{name} must be a string", param=name)
                clauses.append(condition)
                params[name] = value
        for name, op in (("start", ">="), ("end", "<")):
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"received_at {op} fromUnixTimestamp64Micro({{{name}_us:Int64}}, 'UTC')")
                params[f"{name}_us"] = to_micros(utc(value))
        return clauses, params


@dataclass(frozen=True)
class CallsPage:
    """Rows of one page (column → value: times as UTC datetimes, money as Decimal) and the next page's cursor."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(received_us: int, request_id: str) -> str:
    """An opaque cursor for the position after a row."""
    return base64.urlsafe_b64encode(json.dumps([received_us, request_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (received_at µs, request_id) a cursor names; InvalidParameter when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        received_us, request_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidParameter("cursor is not a cursor this API returned", param="cursor") from None
    if not isinstance(received_us, int) or not isinstance(request_id, str):
        raise InvalidParameter("cursor is not a cursor this API returned", param="cursor")
    return received_us, request_id


def _page_sql(where: str) -> str:
    # The newest `fetch` receive times first (one narrow column), so the full rows are read and sorted only
    # from that time on, not for the whole period: without a tenant the table's order cannot serve this sort.
    threshold = (
        f"(SELECT min(received_at) FROM (SELECT received_at FROM llm_calls{where} "
        "ORDER BY received_at DESC LIMIT {fetch:UInt32}))"
    )
    joiner = " AND " if where else " WHERE "
    return (
        f"SELECT {_SELECT} FROM llm_calls{where}{joiner}received_at >= {threshold} "
        "ORDER BY received_at DESC, request_id DESC LIMIT {fetch:UInt32}"
    )


def _after(cursor: str) -> tuple[list[str], dict[str, Any]]:
    received_us, request_id = decode_cursor(cursor)
    at = "fromUnixTimestamp64Micro({cursor_us:Int64}, 'UTC')"
    # The plain bound lets ClickHouse skip parts and granules; the tuple makes the order strict.
    clauses = [f"received_at <= {at}", f"(received_at, request_id) < ({at}, {{cursor_id:String}})"]
    return clauses, {"cursor_us": received_us, "cursor_id": request_id}


def _as_row(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip((name for name, _, _ in COLUMNS), values, strict=True))
    for name in _TIMES:
        row[name] = None if row[name] is None else from_micros(row[name])
    for name in _MONEY:
        row[name] = None if row[name] is None else Decimal(row[name])
    return row


def list_calls(run: Run, filters: CallFilter, cursor: str | None = None, limit: int = 50) -> CallsPage:
    """One page of the calls matching `filters`, newest first, after `cursor` (None: from the newest)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {MAX_LIMIT}", param="limit")
    clauses, params = filters.where()
    if cursor is not None:
        more, extra = _after(cursor)
        clauses, params = clauses + more, params | extra
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    fetched = run(_page_sql(where), params | {"fetch": limit + 1})
    rows: list[tuple[Any, ...]] = []
    for values in fetched:
        if not rows or (rows[-1][1], rows[-1][0]) != (values[1], values[0]):  # a second copy of the same call
            rows.append(values)
    page = [_as_row(values) for values in rows[:limit]]
    if len(fetched) <= limit or not page:
        return CallsPage(rows=page, next_cursor=None)
    last = rows[: len(page)][-1]
    return CallsPage(rows=page, next_cursor=encode_cursor(last[1], last[0]))
