"""Versioned model prices and the cost of a call: the money side of the ledger."""

from __future__ import annotations

from core.prices.cost import UNPRICED, Cost, batch_money, compute_cost
from core.prices.table import (
    ModelPrice,
    PriceTable,
    PriceTableError,
    decimal_string,
    load_seed,
    load_table,
    overrides_digest,
)

__all__ = [
    "UNPRICED",
    "Cost",
    "ModelPrice",
    "PriceTable",
    "PriceTableError",
    "batch_money",
    "compute_cost",
    "decimal_string",
    "load_seed",
    "load_table",
    "overrides_digest",
]
