"""The money and traffic totals a time-series point or a breakdown row carries, read from a rollup."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# (Totals field, aggregate over llm_calls_hourly or llm_calls_dims_hourly: both rollups have these columns).
TOTALS_SQL: tuple[tuple[str, str], ...] = (
    ("requests", "sum(requests)"),
    ("errors", "sum(errors)"),
    ("unpriced_requests", "sum(unpriced_requests)"),
    ("prompt_tokens", "sum(prompt_tokens)"),
    ("completion_tokens", "sum(completion_tokens)"),
    ("cost_usd", "sum(cost_usd)"),
    ("baseline_cost_usd", "sum(baseline_cost_usd)"),
    ("savings_usd", "sum(savings_usd)"),
)
TOTALS_COLUMNS = ", ".join(expr for _, expr in TOTALS_SQL)


@dataclass(frozen=True)
class Totals:
    """Calls and money of a set of calls; unknown costs count as 0 in the sums and in `unpriced_requests`."""

    requests: int
    errors: int
    unpriced_requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    baseline_cost_usd: Decimal
    savings_usd: Decimal

    @classmethod
    def from_row(cls, values: tuple[Any, ...]) -> Totals:
        """Totals from the TOTALS_SQL columns of a result row, in order."""
        fields = dict(zip((name for name, _ in TOTALS_SQL), values, strict=True))
        for name in ("cost_usd", "baseline_cost_usd", "savings_usd"):
            fields[name] = Decimal(fields[name])
        return cls(**fields)

    @classmethod
    def zero(cls) -> Totals:
        """No calls."""
        return cls(0, 0, 0, 0, 0, Decimal(0), Decimal(0), Decimal(0))
