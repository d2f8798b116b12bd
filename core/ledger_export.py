"""Export of ledger rows, one line per call, as CSV or JSON Lines, read from ClickHouse a page at a time."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.callrow import COLUMNS
from core.ledger_reader import LedgerReader
from core.ledger_report import from_micros, ledger_filter

_TIME_KINDS = frozenset({"time", "time?"})
_MONEY_KINDS = frozenset({"money", "money?"})
Line = Callable[[Sequence[Any]], str]


def _iso(us: int) -> str:
    return from_micros(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_value(kind: str, value: Any) -> Any:
    """One column's value for JSON: ISO-8601 UTC times, money as a decimal string, None as null."""
    if value is None:
        return None
    if kind in _TIME_KINDS:
        return _iso(value)
    if kind in _MONEY_KINDS:
        return f"{value:.9f}" if isinstance(value, Decimal) else str(value)
    return list(value) if kind == "list" else value


def _csv_cell(kind: str, value: Any) -> str:
    """One column's value as a CSV cell: JSON rendering, with an empty cell for null and tags as a JSON array."""
    shown = _json_value(kind, value)
    if shown is None:
        return ""
    if isinstance(shown, bool):
        return "true" if shown else "false"
    return json.dumps(shown, ensure_ascii=False) if kind == "list" else str(shown)


def _jsonl_line(row: Sequence[Any]) -> str:
    doc = {name: _json_value(kind, value) for (name, _, kind), value in zip(COLUMNS, row, strict=True)}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"


def _csv_line_maker() -> Line:
    """A function rendering one row as one RFC 4180 CSV line (CRLF-terminated), reusing one buffer."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(row: Sequence[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    return line


def _csv_start(write: Callable[[str], None]) -> Line:
    raw = _csv_line_maker()
    write(raw([name for name, _, _ in COLUMNS]))
    return lambda row: raw([_csv_cell(kind, value) for (_, _, kind), value in zip(COLUMNS, row, strict=True)])


def _jsonl_start(write: Callable[[str], None]) -> Line:
    return _jsonl_line


# Format name → writes the preamble (if any) and returns the per-row line renderer.
_FORMATS: dict[str, Callable[[Callable[[str], None]], Line]] = {"csv": _csv_start, "jsonl": _jsonl_start}
EXPORT_FORMATS = tuple(sorted(_FORMATS))


def _select_list() -> str:
    """Every llm_calls column in order; times as integer microseconds so no client time zone can shift them."""
    return ", ".join(f"toUnixTimestamp64Micro({name})" if kind in _TIME_KINDS else name for name, _, kind in COLUMNS)


PAGE_ROWS = 10_000  # rows per query: well under a reader's row limit, and short enough to let ingest in between
_KEY = ("received_at", "request_id", "tenant_id")  # the export's order, and where each page resumes
_KEY_AT = tuple(next(i for i, (name, _, _) in enumerate(COLUMNS) if name == key) for key in _KEY)
_AFTER = (
    " (received_at, request_id, tenant_id) > "
    "(fromUnixTimestamp64Micro({after_us:Int64}, 'UTC'), {after_id:String}, {after_tenant:String})"
)


def export_rows(
    reader: LedgerReader, *, tenant: str | None, since: datetime | None, until: datetime | None, fmt: str,
    write: Callable[[str], None],
) -> int:
    """Write every call in the window as one line (CSV with a header, or JSONL) to `write`; returns the row count.

    Rows come from `llm_calls FINAL` ordered by received_at, request_id (then tenant_id), PAGE_ROWS at a time, each
    page resuming after the last row sent: memory stays flat and no one query holds the store for long. `write`
    receives whole lines, line ending included.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    line = _FORMATS[fmt](write)
    where, params = ledger_filter(tenant, since, until)
    count = 0
    while True:
        page = reader.query(_page_sql(where, count > 0), params)
        for row in page:
            write(line(row))
        count += len(page)
        if len(page) < PAGE_ROWS:
            return count
        last = page[-1]
        params = dict(params, after_us=last[_KEY_AT[0]], after_id=last[_KEY_AT[1]], after_tenant=last[_KEY_AT[2]])


def _page_sql(where: str, resume: bool) -> str:
    """One page of the export: the window's filter, and after the first page the keyset condition."""
    if resume:
        where = f"{where} AND{_AFTER}" if where else f" WHERE{_AFTER}"
    order = ", ".join(_KEY)
    return f"SELECT {_select_list()} FROM llm_calls FINAL{where} ORDER BY {order} LIMIT {PAGE_ROWS}"
