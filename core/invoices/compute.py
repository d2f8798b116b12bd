"""The invoice of one tenant and month, computed from exact ledger sums: pure, no I/O, no clock.

Money is summed exactly (Decimal), each total is rounded once half-to-even to the cent, and line cents are then
allocated by the largest-remainder method so the lines add up to the totals exactly (docs/invoices.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from core.invoices.money import ZERO, allocate, plain, to_cents
from core.invoices.terms import Month

SAVINGS_KINDS = ("cache", "coalesce", "route", "batch")
ADJUSTMENT = "adjustment:"
_EXACT = Decimal(0)


@dataclass(frozen=True)
class Sums:
    """Exact sums over a set of ledger rows: NULL money counts as 0, every row counts as a call."""

    calls: int = 0
    baseline: Decimal = _EXACT
    actual: Decimal = _EXACT
    savings: Decimal = _EXACT

    def __add__(self, other: Sums) -> Sums:
        return Sums(
            self.calls + other.calls, self.baseline + other.baseline, self.actual + other.actual,
            self.savings + other.savings,
        )

    def __sub__(self, other: Sums) -> Sums:
        return Sums(
            self.calls - other.calls, self.baseline - other.baseline, self.actual - other.actual,
            self.savings - other.savings,
        )

    def __bool__(self) -> bool:
        return bool(self.calls or self.baseline or self.actual or self.savings)


@dataclass(frozen=True)
class Group:
    """The sums of one future line: the rows of one period, line kind and requested model."""

    period: Month
    kind: str
    model: str
    sums: Sums

    @property
    def order(self) -> tuple[bool, Month, str, str]:
        """Line order: the month's own lines by kind and model, then adjustments by period, kind and model."""
        return (self.kind.startswith(ADJUSTMENT), self.period, self.kind, self.model)


@dataclass(frozen=True)
class Line:
    """One invoice line, in cents."""

    period: Month
    kind: str
    model: str
    calls: int
    baseline: Decimal
    actual: Decimal
    savings: Decimal


@dataclass(frozen=True)
class Party:
    """Who is invoiced: the tenant as the relational store knows it."""

    tenant_id: str
    name: str
    tier: str
    fee_rate: Decimal


@dataclass(frozen=True)
class Invoice:
    """An invoice's figures, in cents; lines sum exactly to the totals."""

    party: Party
    month: Month
    calls: int
    baseline_cost: Decimal
    actual_cost: Decimal
    savings: Decimal
    savings_by_kind: dict[str, Decimal]
    fee: Decimal
    net_benefit: Decimal
    price_versions: tuple[str, ...]
    lines: tuple[Line, ...]


def _allocated(values: Sequence[Decimal]) -> list[Decimal]:
    return allocate(values, to_cents(sum(values, _EXACT)))


def _savings(groups: Sequence[Group]) -> tuple[Decimal, dict[str, Decimal], list[Decimal]]:
    """Total savings, then per line kind (allocated from the total), then per line (allocated from its kind)."""
    kinds = list(dict.fromkeys(g.kind for g in groups))
    exact = {kind: sum((g.sums.savings for g in groups if g.kind == kind), _EXACT) for kind in kinds}
    total = to_cents(sum(exact.values(), _EXACT))
    by_kind = dict(zip(kinds, allocate(list(exact.values()), total), strict=True))
    per_line: dict[int, Decimal] = {}
    for kind in kinds:
        members = [i for i, g in enumerate(groups) if g.kind == kind]
        cents = allocate([groups[i].sums.savings for i in members], by_kind[kind])
        per_line.update(zip(members, cents, strict=True))
    return total, by_kind, [per_line[i] for i in range(len(groups))]


def _shown_kinds(by_kind: dict[str, Decimal]) -> dict[str, Decimal]:
    """The four savings kinds always; any other line kind (adjustments) when it holds a cent."""
    shown = {kind: by_kind.get(kind, ZERO) for kind in SAVINGS_KINDS}
    shown.update((kind, cents) for kind, cents in by_kind.items() if kind not in shown and cents)
    return shown


def fee_for(savings: Decimal, rate: Decimal) -> Decimal:
    """The fee on an invoice's savings (in cents): the rate of positive savings, never negative."""
    return to_cents(max(savings, ZERO) * rate)


def compute_invoice(party: Party, month: Month, groups: Iterable[Group], price_versions: Iterable[str]) -> Invoice:
    """The invoice for `party` and `month` from the exact sums of its lines (own rows and adjustments)."""
    ordered = sorted((g for g in groups if g.sums), key=lambda g: g.order)
    with localcontext() as ctx:
        ctx.prec = 60  # sums of Decimal(38, 9) must never round before the final cent
        baselines = _allocated([g.sums.baseline for g in ordered])
        actuals = _allocated([g.sums.actual for g in ordered])
        savings, by_kind, line_savings = _savings(ordered)
    lines = tuple(
        Line(g.period, g.kind, g.model, g.sums.calls, b, a, s)
        for g, b, a, s in zip(ordered, baselines, actuals, line_savings, strict=True)
    )
    fee = fee_for(savings, party.fee_rate)
    return Invoice(
        party=party, month=month, calls=sum(line.calls for line in lines),
        baseline_cost=plain(sum((line.baseline for line in lines), ZERO)),
        actual_cost=plain(sum((line.actual for line in lines), ZERO)),
        savings=savings, savings_by_kind=_shown_kinds(by_kind), fee=fee, net_benefit=plain(savings - fee),
        price_versions=tuple(sorted({v for v in price_versions if v})), lines=lines,
    )
