"""The invoice as CSV: one row per line item, then a row per savings kind and the total row.

Columns: number, tenant, record (line, kind_total, total), period, kind, model, calls, baseline, actual, savings,
fee_rate, fee, net_benefit. The line rows' calls, baseline, actual and savings add up to the total row's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

HEADER = (
    "number", "tenant", "record", "period", "kind", "model", "calls", "baseline", "actual", "savings", "fee_rate",
    "fee", "net_benefit",
)


def _rows(doc: dict[str, Any]) -> Iterable[list[object]]:
    who = [doc["number"] or "DRAFT", doc["tenant"]]
    for line in doc["lines"]:
        yield [*who, "line", line["period"], line["kind"], line["model"], line["calls"], line["baseline"],
               line["actual"], line["savings"], "", "", ""]
    for kind, savings in doc["savings_by_kind"].items():
        yield [*who, "kind_total", doc["period"], kind, "", "", "", "", savings, "", "", ""]
    yield [*who, "total", doc["period"], "", "", doc["calls"], doc["baseline_cost"], doc["actual_cost"],
           doc["savings"], doc["fee_rate"], doc["fee"], doc["net_benefit"]]


def render_csv(doc: dict[str, Any]) -> str:
    """RFC 4180 CSV (CRLF line endings) of an invoice's JSON form."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(_rows(doc))
    return buffer.getvalue()
