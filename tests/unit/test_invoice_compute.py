"""The invoice computation with fixed inputs: rounding, allocation, fees, kinds, adjustments and the forms."""

from __future__ import annotations

import csv
import io
import random
from decimal import ROUND_FLOOR, Decimal

import pytest

from core.invoices.adjustments import Basis, adjustments, billed
from core.invoices.compute import Group, Party, Sums, compute_invoice
from core.invoices.csvform import render_csv
from core.invoices.document import content, content_hash, document
from core.invoices.ledger import LedgerGroup
from core.invoices.money import allocate, to_cents
from core.invoices.pdfform import render_pdf
from core.invoices.terms import InvoiceError, Month, fee_rate, parse_rate

NOV = Month(2026, 11)
OCT = Month(2026, 10)
EARLY = Party("ten_1", "acme", "early", Decimal("0.20"))
D = Decimal


def group(kind: str, model: str, calls: int, baseline: str, actual: str, period: Month = NOV) -> Group:
    return Group(period, kind, model, Sums(calls, D(baseline), D(actual), D(baseline) - D(actual)))


def check_lines_add_up(invoice_lines: list[Decimal], total: Decimal, exact: list[Decimal]) -> None:
    assert sum(invoice_lines, D(0)) == total
    for cents, value in zip(invoice_lines, exact, strict=True):
        floor = (value * 100).to_integral_value(rounding=ROUND_FLOOR) / 100
        assert cents in (floor, floor + D("0.01")), (cents, value)


def test_totals_round_half_to_even_once() -> None:
    assert to_cents(D("0.125")) == D("0.12")
    assert to_cents(D("0.135")) == D("0.14")
    assert to_cents(D("-0.125")) == D("-0.12")
    assert str(to_cents(D("-0.004"))) == "0.00"  # never a negative zero


def test_many_tiny_lines_sum_exactly_to_the_rounded_totals() -> None:
    # 300 lines of 0.3 cents: rounding each line would give 0.00 each and a total of 0; the total is 0.90.
    groups = [group("cache", f"m{i:03d}", 1, "0.003000000", "0") for i in range(300)]
    invoice = compute_invoice(EARLY, NOV, groups, ["2026-11"])
    assert invoice.savings == invoice.baseline_cost == D("0.90")
    assert sum(line.savings for line in invoice.lines) == D("0.90")
    assert sum(line.baseline for line in invoice.lines) == D("0.90")
    assert sorted({line.savings for line in invoice.lines}) == [D("0.00"), D("0.01")]
    # Ties go to the earlier line: the first 90 lines (in model order) carry the cents.
    assert [line.savings for line in invoice.lines[:90]] == [D("0.01")] * 90


def test_allocation_is_exact_for_random_amounts_of_either_sign() -> None:
    rng = random.Random(11)
    for _ in range(200):
        exact = [D(rng.randrange(-5_000_000, 9_000_000)).scaleb(-9) for _ in range(rng.randrange(1, 40))]
        total = to_cents(sum(exact, D(0)))
        check_lines_add_up(allocate(exact, total), total, exact)


def test_savings_by_kind_and_lines_add_up_for_every_kind() -> None:
    rng = random.Random(5)
    kinds = ("", "cache", "coalesce", "route", "batch")
    groups = [
        group(kind, f"model-{m}", rng.randrange(1, 50), f"{D(rng.randrange(10**9)).scaleb(-9) + 1:f}",
              "0" if kind in ("cache", "coalesce") else f"{D(rng.randrange(10**9)).scaleb(-9):f}")
        for kind in kinds for m in range(4)
    ]
    groups = [g if g.kind else Group(g.period, "", g.model, Sums(g.sums.calls, D(1), D(1), D(0))) for g in groups]
    invoice = compute_invoice(EARLY, NOV, groups, ["2026-11", "", "2026-10"])
    assert set(invoice.savings_by_kind) == {"cache", "coalesce", "route", "batch"}
    assert sum(invoice.savings_by_kind.values()) == invoice.savings
    for kind, cents in invoice.savings_by_kind.items():
        assert sum(line.savings for line in invoice.lines if line.kind == kind) == cents
    assert invoice.calls == sum(g.sums.calls for g in groups)
    assert sum(line.actual for line in invoice.lines) == invoice.actual_cost
    exact_savings = sum((g.sums.savings for g in groups), D(0))
    assert invoice.savings == to_cents(exact_savings)
    assert invoice.fee == to_cents(invoice.savings * D("0.20"))
    assert invoice.net_benefit == invoice.savings - invoice.fee
    assert invoice.price_versions == ("2026-10", "2026-11")
    assert [line.kind for line in invoice.lines[:4]] == [""] * 4  # kind order: "" first, then alphabetical


def test_negative_savings_mean_no_fee() -> None:
    invoice = compute_invoice(EARLY, NOV, [group("route", "gpt-4o", 3, "1.00", "1.50")], [])
    assert invoice.savings == D("-0.50")
    assert invoice.fee == D("0.00")
    assert invoice.net_benefit == D("-0.50")


def test_fee_rates_by_tier_and_enterprise_rate() -> None:
    assert fee_rate("free", None) == 0
    assert fee_rate("early", "0.5") == fee_rate("mid", None) == D("0.20")  # only enterprise has its own
    assert fee_rate("enterprise", None) == D("0.20")
    assert fee_rate("enterprise", "0.125") == D("0.125")
    party = Party("ten_2", "big", "enterprise", fee_rate("enterprise", "0.125"))
    invoice = compute_invoice(party, NOV, [group("cache", "gpt-4o", 1, "10.00", "0")], [])
    assert invoice.fee == D("1.25")
    assert content(invoice, number=None, issued_at=None, replaces=None)["fee_rate"] == "0.125"
    free = compute_invoice(Party("t", "f", "free", fee_rate("free", None)), NOV, [group("cache", "m", 1, "9", "0")], [])
    assert free.fee == 0 and free.net_benefit == D("9.00")


@pytest.mark.parametrize("text", ["1.5", "-0.1", "abc", "NaN", "Infinity"])
def test_bad_fee_rates_are_refused(text: str) -> None:
    with pytest.raises(InvoiceError):
        parse_rate(text)


def test_months() -> None:
    assert Month.parse("2026-12").end == Month(2027, 1).start
    assert str(Month.from_yyyymm(202611)) == "2026-11"
    for bad in ("2026-13", "2026-1", "26-11", "november"):
        with pytest.raises(InvoiceError):
            Month.parse(bad)


def test_adjustments_are_the_difference_to_what_was_billed() -> None:
    billed_oct = Basis(own={(OCT, "cache", "gpt-4o"): Sums(2, D("0.5"), D(0), D("0.5"))}, adjusted={})
    earlier_adjustment = Basis(own={}, adjusted={(OCT, "cache", "gpt-4o"): Sums(1, D("0.1"), D(0), D("0.1"))})
    bases = [Basis.from_json(b.to_json()) for b in (billed_oct, earlier_adjustment)]
    now = [
        LedgerGroup(OCT, "cache", "gpt-4o", Sums(4, D("0.9"), D(0), D("0.9")), frozenset({"2026-10"})),
        LedgerGroup(OCT, "", "gpt-4o", Sums(1, D("0.2"), D("0.2"), D(0)), frozenset({"2026-10"})),
        LedgerGroup(Month(2026, 9), "cache", "gpt-4o", Sums(9, D(9), D(0), D(9)), frozenset({"2026-09"})),
    ]
    late = adjustments(now, billed(bases), {OCT})
    assert {(g.period, g.kind, g.model): g.sums for g in late.groups} == {
        (OCT, "adjustment:cache", "gpt-4o"): Sums(1, D("0.3"), D(0), D("0.3")),
        (OCT, "adjustment:none", "gpt-4o"): Sums(1, D("0.2"), D("0.2"), D(0)),
    }
    assert late.price_versions == {"2026-10"}
    invoice = compute_invoice(EARLY, NOV, [group("cache", "gpt-4o", 1, "1", "0"), *late.groups], [])
    assert [(line.period, line.kind) for line in invoice.lines] == [
        (NOV, "cache"), (OCT, "adjustment:cache"), (OCT, "adjustment:none"),
    ]
    assert invoice.savings_by_kind["adjustment:cache"] == D("0.30") and invoice.savings == D("1.30")


def sample_doc(status: str = "issued") -> dict[str, object]:
    groups = [group("cache", "gpt-4o", 7, "12.3456", "0"), group("route", "gpt-4o", 5, "3.333", "1.111")]
    invoice = compute_invoice(EARLY, NOV, groups, ["2026-11"])
    return document(content(invoice, number="NET-2026-000042", issued_at=None, replaces=None), status)


def test_json_form_money_and_hash() -> None:
    doc = sample_doc()
    assert doc["savings"] == "14.57" and doc["baseline_cost"] == "15.68" and doc["actual_cost"] == "1.11"
    assert doc["currency"] == "USD" and doc["period_start"] == "2026-11-01T00:00:00Z"
    assert doc["period_end"] == "2026-12-01T00:00:00Z" and doc["fee_rate"] == "0.20" and doc["fee"] == "2.91"
    assert doc["content_hash"] == sample_doc("paid")["content_hash"] == content_hash(doc)  # status is not hashed
    changed = {**doc, "fee": "2.92"}
    assert content_hash(changed) != doc["content_hash"]


def test_csv_lines_add_up_to_the_total_row() -> None:
    doc = sample_doc()
    rows = list(csv.DictReader(io.StringIO(render_csv(doc))))
    lines = [r for r in rows if r["record"] == "line"]
    (total,) = [r for r in rows if r["record"] == "total"]
    for column in ("baseline", "actual", "savings"):
        assert sum(D(r[column]) for r in lines) == D(total[column])
    assert sum(int(r["calls"]) for r in lines) == int(total["calls"]) == 12
    assert total["fee"] == "2.91" and total["net_benefit"] == "11.66"
    kinds = {r["kind"]: D(r["savings"]) for r in rows if r["record"] == "kind_total"}
    assert sum(kinds.values()) == D(total["savings"])


def test_pdf_carries_number_totals_terms_and_recompute_paragraph() -> None:
    doc = sample_doc()
    raw = render_pdf(doc, compress=False)
    assert raw.startswith(b"%PDF-")
    for text in (b"NET-2026-000042", b"14.57 USD", b"2.91 USD", b"Fee terms", b"How to recompute", b"acme"):
        assert text in raw, text
    assert render_pdf(doc).startswith(b"%PDF-")
