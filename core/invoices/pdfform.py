"""The invoice as a PDF (fpdf2): who, which month, the lines, the totals, the fee terms and how to recompute it.

The built-in PDF fonts cover Latin-1 only: a character outside it (in a tenant or model name) prints as "?";
the JSON and CSV forms carry every name exactly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

_LINE_COLUMNS = ("Period", "Kind", "Model", "Calls", "Baseline", "Actual", "Savings")
_WIDTHS = (16, 30, 58, 18, 22, 22, 22)
_RECOMPUTE = (
    "How to recompute: export the month's rows with `netra ledger export --format csv --tenant {tenant} "
    "--since {start} --until {end}`. Group them by savings_kind and requested_model; per group, calls = number of "
    "rows, baseline = sum of baseline_cost_usd, actual = sum of cost_usd (an empty value counts as 0), savings = "
    "sum of savings_usd, all exact. Each total is the sum of its groups rounded once, half-to-even, to the cent; "
    "line cents are the floors of the exact amounts plus one cent for the largest remainders until they reach "
    "the total (savings: first per kind, then per line within the kind). Adjustment lines are the difference "
    "between a month already invoiced, recomputed the same way, and what its invoices billed. The formulas are "
    "stated in docs/invoices.md; the price tables are printed by `netra prices show --version <version>`."
)


def _latin1(text: object) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


def _pair(pdf: FPDF, label: str, value: object) -> None:
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(52, 5, _latin1(label))
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, _latin1(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _heading(pdf: FPDF, doc: dict[str, Any]) -> None:
    pdf.set_font("Helvetica", "B", 16)
    title = f"Savings invoice {doc['number']}" if doc["number"] else "Savings invoice - DRAFT (not issued)"
    pdf.cell(0, 10, _latin1(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _pair(pdf, "Number", doc["number"] or "none: a draft, recomputed on demand")
    _pair(pdf, "Status", doc["status"])
    _pair(pdf, "Tenant", f"{doc['tenant']} ({doc['tenant_id']}), tier {doc['tier']}")
    _pair(pdf, "Period", f"{doc['period']}: {doc['period_start']} to {doc['period_end']} (exclusive, UTC)")
    _pair(pdf, "Issued at", doc["issued_at"] or "-")
    if doc.get("replaces"):
        _pair(pdf, "Replaces", f"{doc['replaces']} (void)")
    _pair(pdf, "Currency", doc["currency"])
    pdf.ln(3)


def _lines(pdf: FPDF, doc: dict[str, Any]) -> None:
    pdf.set_font("Helvetica", "B", 8)
    for title, width in zip(_LINE_COLUMNS, _WIDTHS, strict=True):
        pdf.cell(width, 6, title, border="B", align="R" if width < 30 else "L")
    pdf.ln()
    pdf.set_font("Helvetica", "", 8)
    for line in doc["lines"]:
        cells = (line["period"], line["kind"] or "(no saving)", line["model"] or "(none)", line["calls"],
                 line["baseline"], line["actual"], line["savings"])
        for value, width in zip(cells, _WIDTHS, strict=True):
            pdf.cell(width, 5, _latin1(value)[:40], align="R" if width < 30 else "L")
        pdf.ln()
    pdf.ln(3)


def _totals(pdf: FPDF, doc: dict[str, Any]) -> None:
    _pair(pdf, "Calls", doc["calls"])
    _pair(pdf, "Baseline cost", f"{doc['baseline_cost']} USD")
    _pair(pdf, "Actual cost", f"{doc['actual_cost']} USD")
    _pair(pdf, "Savings", f"{doc['savings']} USD")
    for kind, amount in doc["savings_by_kind"].items():
        _pair(pdf, f"   of which {kind or '(no saving)'}", f"{amount} USD")
    _pair(pdf, "Fee", f"{doc['fee']} USD ({_percent(doc['fee_rate'])} of savings)")
    _pair(pdf, "Net benefit", f"{doc['net_benefit']} USD")
    _pair(pdf, "Price versions", ", ".join(doc["price_versions"]) or "-")
    _pair(pdf, "Content SHA-256", doc["content_hash"])
    pdf.ln(3)


def _percent(rate: str) -> str:
    return f"{(Decimal(rate) * 100).normalize():f}%"


def _terms(pdf: FPDF, doc: dict[str, Any]) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "Fee terms", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(0, 4.5, _latin1(
        f"The fee is {_percent(doc['fee_rate'])} (tier {doc['tier']}) of the invoice's savings, rounded half-to-even "
        "to the cent; when the savings are zero or negative the fee is 0, never negative. Net benefit = savings - "
        "fee. Savings = baseline cost (what the calls would have cost as sent, at list price) - actual cost."
    ))
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "How to recompute this invoice", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    start, end = doc["period_start"][:10], doc["period_end"][:10]
    pdf.multi_cell(0, 4.5, _latin1(_RECOMPUTE.format(tenant=doc["tenant"], start=start, end=end)))


def render_pdf(doc: dict[str, Any], *, compress: bool = True) -> bytes:
    """The PDF of an invoice's JSON form; `compress=False` leaves its text readable in the bytes."""
    pdf = FPDF(format="A4")
    pdf.set_compression(compress)
    pdf.set_title(_latin1(f"Savings invoice {doc['number'] or 'DRAFT'} - {doc['tenant']} {doc['period']}"))
    pdf.set_creator("Netra")
    pdf.add_page()
    _heading(pdf, doc)
    _lines(pdf, doc)
    _totals(pdf, doc)
    _terms(pdf, doc)
    return bytes(pdf.output())
