"""The invoice's JSON form: its content (what the hash covers) and the lifecycle fields around it."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.invoices.compute import Invoice, Line
from core.invoices.money import CENT, money_text

CURRENCY = "USD"
# Fields that change after issue, or describe the content: outside the hashed content.
LIFECYCLE = ("status", "paid_at", "voided_at", "replaced_by", "content_hash")


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, or None."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def rate_text(rate: Decimal) -> str:
    """A fee rate as text: at least two decimals (0.20), more only when the rate has them (0.125)."""
    return f"{rate.quantize(CENT):f}" if rate == rate.quantize(CENT) else f"{rate.normalize():f}"


def _line(line: Line) -> dict[str, Any]:
    return {
        "period": str(line.period), "kind": line.kind, "model": line.model, "calls": line.calls,
        "baseline": money_text(line.baseline), "actual": money_text(line.actual), "savings": money_text(line.savings),
    }


def content(
    invoice: Invoice, *, number: str | None, issued_at: datetime | None, replaces: str | None
) -> dict[str, Any]:
    """The invoice's content as JSON-ready values: money as decimal strings with two decimals."""
    party, month = invoice.party, invoice.month
    return {
        "number": number, "tenant": party.name, "tenant_id": party.tenant_id, "tier": party.tier,
        "period": str(month), "period_start": iso(month.start), "period_end": iso(month.end),
        "currency": CURRENCY, "calls": invoice.calls,
        "baseline_cost": money_text(invoice.baseline_cost), "actual_cost": money_text(invoice.actual_cost),
        "savings": money_text(invoice.savings),
        "savings_by_kind": {kind: money_text(v) for kind, v in invoice.savings_by_kind.items()},
        "fee_rate": rate_text(party.fee_rate), "fee": money_text(invoice.fee),
        "net_benefit": money_text(invoice.net_benefit), "price_versions": list(invoice.price_versions),
        "lines": [_line(line) for line in invoice.lines], "issued_at": iso(issued_at), "replaces": replaces,
    }


def canonical(doc: dict[str, Any]) -> bytes:
    """The canonical bytes of a content: UTF-8 JSON, keys sorted, no spaces; lifecycle fields left out."""
    kept = {key: value for key, value in doc.items() if key not in LIFECYCLE}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_hash(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical content."""
    return hashlib.sha256(canonical(doc)).hexdigest()


def document(
    doc: dict[str, Any], status: str, *, paid_at: datetime | None = None, voided_at: datetime | None = None,
    replaced_by: str | None = None,
) -> dict[str, Any]:
    """The JSON form: the content with its status, hash and lifecycle dates."""
    return {
        **doc, "status": status, "paid_at": iso(paid_at), "voided_at": iso(voided_at), "replaced_by": replaced_by,
        "content_hash": content_hash(doc),
    }
