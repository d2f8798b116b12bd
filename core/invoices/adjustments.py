"""Late rows: what issued invoices billed per month, and the adjustment lines for what the ledger holds now.

An issued invoice keeps its basis: the exact sums of its own month's rows, and of each adjustment it carried,
per (period, savings kind, requested model). What a month has been billed is its invoice's own sums plus every
adjustment for it on invoices in force; the difference to the month recomputed now is the next adjustment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from core.invoices.compute import ADJUSTMENT, Group, Sums
from core.invoices.ledger import LedgerGroup
from core.invoices.terms import Month

Key = tuple[Month, str, str]  # period, savings kind as in the ledger ('' for none), requested model


@dataclass(frozen=True)
class Basis:
    """The exact sums an invoice billed, per (period, savings kind, requested model)."""

    own: dict[Key, Sums]
    adjusted: dict[Key, Sums]

    def to_json(self) -> str:
        """The basis as stored (money as exact decimal strings)."""
        return json.dumps({"own": _rows(self.own), "adjusted": _rows(self.adjusted)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Basis:
        """The basis stored with an invoice."""
        doc = json.loads(text)
        return cls(own=_sums(doc["own"]), adjusted=_sums(doc["adjusted"]))


def _rows(sums: Mapping[Key, Sums]) -> list[list[object]]:
    return [
        [str(period), kind, model, s.calls, str(s.baseline), str(s.actual), str(s.savings)]
        for (period, kind, model), s in sorted(sums.items())
    ]


def _sums(rows: Iterable[list[object]]) -> dict[Key, Sums]:
    out: dict[Key, Sums] = {}
    for period, kind, model, calls, baseline, actual, savings in rows:
        key = (Month.parse(str(period)), str(kind), str(model))
        out[key] = Sums(int(str(calls)), Decimal(str(baseline)), Decimal(str(actual)), Decimal(str(savings)))
    return out


def billed(bases: Iterable[Basis]) -> dict[Key, Sums]:
    """What invoices in force billed, per (period, savings kind, requested model)."""
    total: dict[Key, Sums] = {}
    for basis in bases:
        for part in (basis.own, basis.adjusted):
            for key, sums in part.items():
                total[key] = total.get(key, Sums()) + sums
    return total


def adjustment_kind(kind: str) -> str:
    """The line kind of an adjustment to rows of a savings kind: adjustment:cache, …, adjustment:none."""
    return ADJUSTMENT + (kind or "none")


@dataclass(frozen=True)
class Adjustments:
    """Adjustment lines for months already invoiced, their exact differences, and the price versions involved."""

    groups: list[Group]
    differences: dict[Key, Sums]
    price_versions: frozenset[str]


def adjustments(now: Iterable[LedgerGroup], billed_so_far: Mapping[Key, Sums], months: set[Month]) -> Adjustments:
    """The difference, per key of an invoiced month, between the ledger now and what has been billed."""
    current = {(g.month, g.kind, g.model): g for g in now if g.month in months}
    keys = set(current) | {key for key in billed_so_far if key[0] in months}
    differences: dict[Key, Sums] = {}
    versions: set[str] = set()
    for key in keys:
        ledger = current[key].sums if key in current else Sums()
        difference = ledger - billed_so_far.get(key, Sums())
        if difference:
            differences[key] = difference
            versions |= current[key].price_versions if key in current else frozenset()
    groups = [Group(period, adjustment_kind(kind), model, s) for (period, kind, model), s in differences.items()]
    return Adjustments(groups=groups, differences=differences, price_versions=frozenset(versions))
