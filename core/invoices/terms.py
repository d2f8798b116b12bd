"""Billing terms: the invoice period (a calendar month in UTC) and the fee rate of a tenant's tier."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

# The share of a month's savings Netra invoices, per tier; enterprise tenants may carry their own rate.
TIER_FEE_RATES: dict[str, Decimal] = {
    "free": Decimal("0"),
    "early": Decimal("0.20"),
    "mid": Decimal("0.20"),
    "enterprise": Decimal("0.20"),
}
DEFAULT_FEE_RATE = Decimal("0.20")
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class InvoiceError(ValueError):
    """An invoice operation that cannot be carried out, with a message for the operator."""


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in UTC; its rows are those with received_at in [start, end)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """A month from `YYYY-MM`."""
        match = _MONTH.fullmatch(text.strip())
        if match is None:
            raise InvoiceError(f"cannot read {text!r} as a month: use YYYY-MM, e.g. 2026-11")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def from_yyyymm(cls, value: int) -> Month:
        """A month from ClickHouse's toYYYYMM (202611)."""
        return cls(value // 100, value % 100)

    @property
    def start(self) -> datetime:
        """Midnight UTC on the first day."""
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Midnight UTC on the first day of the next month (exclusive)."""
        return self.next().start

    def next(self) -> Month:
        """The following month."""
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def parse_rate(text: str) -> Decimal:
    """A fee rate between 0 and 1 from its decimal text (0.15 for 15%)."""
    try:
        rate = Decimal(text.strip())
    except InvalidOperation:
        raise InvoiceError(f"cannot read {text!r} as a fee rate: use a decimal between 0 and 1, e.g. 0.15") from None
    if not rate.is_finite() or not 0 <= rate <= 1:
        raise InvoiceError(f"a fee rate is between 0 and 1 (0.15 for 15%), not {text!r}")
    return rate


def fee_rate(tier: str, tenant_rate: str | None) -> Decimal:
    """The tier's rate; an enterprise tenant's own rate when it has one (else the default 0.20)."""
    if tier == "enterprise" and tenant_rate:
        return parse_rate(tenant_rate)
    return TIER_FEE_RATES.get(tier, DEFAULT_FEE_RATE)
