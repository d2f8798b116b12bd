"""Cents: half-even rounding of totals and largest-remainder allocation of line cents to those totals."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
_HUNDRED = Decimal(100)


def plain(value: Decimal) -> Decimal:
    """A cents amount without a negative zero (so it prints as 0.00, never -0.00)."""
    return value.quantize(CENT) if value else ZERO


def to_cents(value: Decimal) -> Decimal:
    """`value` rounded once, half-to-even, to the cent."""
    return plain(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


def allocate(exact: Sequence[Decimal], total: Decimal) -> list[Decimal]:
    """Cents for each exact amount, summing to `total` exactly (largest-remainder method).

    Every amount gets its floor in cents; the cents still missing to reach `total` go one each to the amounts
    with the largest remainders, ties to the earlier amount. Each result is then the floor or the ceiling of its
    exact amount.
    """
    hundredths = [value * _HUNDRED for value in exact]
    floors = [value.to_integral_value(rounding=ROUND_FLOOR) for value in hundredths]
    missing = int(total * _HUNDRED - sum(floors, Decimal(0)))
    if not 0 <= missing <= len(exact):
        raise ValueError(f"cannot allocate {total} over amounts summing to {sum(exact, Decimal(0))}")
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(hundredths[i] - floors[i]), i))
    bumped = frozenset(by_remainder[:missing])
    return [plain((floors[i] + (1 if i in bumped else 0)) / _HUNDRED) for i in range(len(exact))]


def money_text(value: Decimal) -> str:
    """A cents amount as the decimal string invoices carry: two decimals, no exponent, no negative zero."""
    return f"{plain(value):.2f}"
