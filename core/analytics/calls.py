"""The calls explorer: ledger rows matching filters, newest first, a page at a time (keyset pagination).

A page ends with a cursor naming its last row's (received_at, request_id); the next page holds the rows
strictly before it in (received_at DESC, request_id DESC) order, so rows inserted meanwhile never shift a page:
each row that existed when the walk began is seen exactly once. Rows come from `llm_calls` without FINAL, but
two copies of one call (same key, not merged yet) sit side by side in that order and the second is dropped.
A page is read from the last hour before its newest possible row first, then 8 hours, 3 days, 3 weeks, then
everything, stopping at the first window that holds a page: the table is ordered by tenant first, so only a
time bound keeps a newest-first page across tenants from reading the whole month. A request-id prefix search
skips the windows: it finds its page's keys in the `by_request_id` projection (ordered by request_id, migration
0006), then reads those rows by the table's own key.
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
_HOUR_US = 3_600_000_000
# How far back from the newest possible row each try reads; after the last, the whole period.
_SINCE_FLOOR = "received_at >= fromUnixTimestamp64Micro({floor_us:Int64}, 'UTC')"
WINDOWS_US = (_HOUR_US, 8 * _HOUR_US, 72 * _HOUR_US, 21 * 24 * _HOUR_US)
# Timestamps leave ClickHouse as integer microseconds (chDB and HTTP clients disagree on time zones).
_SELECT = ", ".join(f"toUnixTimestamp64Micro({name})" if kind.startswith("time") else name for name, _, kind in COLUMNS)
_ORDER = "ORDER BY received_at DESC, request_id DESC"
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
    return f"SELECT {_SELECT} FROM llm_calls{where} {_ORDER} LIMIT {{fetch:UInt32}}"


def request_id_keys_sql(where: str) -> str:
    """The keys of a request-id search's page; its filters are all columns of the by_request_id projection."""
    # Not in the table's order even for one tenant: a rare prefix would read the tenant's whole period that way.
    keys = f"SELECT tenant_id, received_at, request_id FROM llm_calls{where} {_ORDER} LIMIT {{fetch:UInt32}}"
    return f"{keys} SETTINGS optimize_read_in_order = 0"


def _by_request_id_sql(where: str) -> str:
    keys = request_id_keys_sql(where)
    rows = f"SELECT {_SELECT} FROM llm_calls WHERE (tenant_id, received_at, request_id) IN ({keys})"
    return f"{rows} {_ORDER} LIMIT {{fetch:UInt32}}"


def _newest_us(run: Run, filters: CallFilter, cursor: tuple[int, str] | None) -> int | None:
    """The newest time the page can start at: the cursor's, the filter's end, else the table's newest row."""
    if cursor is not None:
        return cursor[0]
    if filters.end is not None:
        return to_micros(utc(filters.end))
    # Answered from the parts' min/max index, not by reading rows.
    newest = run("SELECT toUnixTimestamp64Micro(max(received_at)), count() > 0 FROM llm_calls", {})
    return int(newest[0][0]) if newest and newest[0][1] else None


def _windows(run: Run, filters: CallFilter, cursor: tuple[int, str] | None) -> list[int | None]:
    """Lower bounds (µs) of ever wider windows back from the newest possible row; None: no bound."""
    newest = _newest_us(run, filters, cursor)
    if newest is None:
        return [None]
    floor = None if filters.start is None else to_micros(utc(filters.start))
    bounds: list[int | None] = []
    for width in WINDOWS_US:
        bound = newest - width
        if floor is not None and bound <= floor:
            break
        bounds.append(bound)
    return [*bounds, None]


def _after(position: tuple[int, str]) -> tuple[list[str], dict[str, Any]]:
    received_us, request_id = position
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


def _fetch(run: Run, filters: CallFilter, cursor: str | None, fetch: int) -> list[tuple[Any, ...]]:
    """The first `fetch` rows in page order: read from a recent window first, widened until it holds enough.

    Without a tenant the table's order cannot serve a newest-first sort, so a sort over the whole period
    would read every row; the newest rows of a window are the newest overall once it holds `fetch` of them.
    """
    clauses, params = filters.where()
    position = None if cursor is None else decode_cursor(cursor)
    if position is not None:
        more, extra = _after(position)
        clauses, params = clauses + more, params | extra
    if filters.request_id_prefix is not None:
        return run(_by_request_id_sql(" WHERE " + " AND ".join(clauses)), params | {"fetch": fetch})
    fetched: list[tuple[Any, ...]] = []
    for bound in _windows(run, filters, position):
        window = clauses if bound is None else [*clauses, _SINCE_FLOOR]
        where = " WHERE " + " AND ".join(window) if window else ""
        fetched = run(_page_sql(where), params | {"fetch": fetch, "floor_us": bound or 0})
        if len(fetched) >= fetch:
            break
    return fetched


def list_calls(run: Run, filters: CallFilter, cursor: str | None = None, limit: int = 50) -> CallsPage:
    """One page of the calls matching `filters`, newest first, after `cursor` (None: from the newest)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {MAX_LIMIT}", param="limit")
    fetched = _fetch(run, filters, cursor, limit + 1)
    rows: list[tuple[Any, ...]] = []
    for values in fetched:
        if not rows or (rows[-1][1], rows[-1][0]) != (values[1], values[0]):  # a second copy of the same call
            rows.append(values)
    page = [_as_row(values) for values in rows[:limit]]
    if len(fetched) <= limit or not page:
        return CallsPage(rows=page, next_cursor=None)
    last = rows[: len(page)][-1]
    return CallsPage(rows=page, next_cursor=encode_cursor(last[1], last[0]))
