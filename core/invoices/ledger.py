"""The ledger sums an invoice is computed from: `llm_calls FINAL` per month, savings kind and requested model.

Blocking (chDB, the ledger socket or a ClickHouse server); async callers run it in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.invoices.compute import Sums
from core.invoices.terms import Month
from core.ledger_reader import LedgerReader
from core.ledger_report import to_micros

# NULL money (an unpriced call) counts as 0, as in `netra ledger summary`; Decimal(38, 9) sums never round.
_SQL = """
SELECT toYYYYMM(received_at) AS month, savings_kind, requested_model, count(),
       sum(toDecimal128(ifNull(baseline_cost_usd, 0), 9)), sum(toDecimal128(ifNull(cost_usd, 0), 9)),
       sum(toDecimal128(savings_usd, 9)), groupUniqArray(price_version)
FROM llm_calls FINAL
WHERE tenant_id = {tenant_id:String}
  AND received_at >= fromUnixTimestamp64Micro({since_us:Int64}, 'UTC')
  AND received_at < fromUnixTimestamp64Micro({until_us:Int64}, 'UTC')
GROUP BY month, savings_kind, requested_model
"""


@dataclass(frozen=True)
class LedgerGroup:
    """The exact sums of a tenant's rows of one month, savings kind ('' for none) and requested model."""

    month: Month
    kind: str
    model: str
    sums: Sums
    price_versions: frozenset[str]


def ledger_groups(store: LedgerReader, tenant_id: str, since: datetime, until: datetime) -> list[LedgerGroup]:
    """The tenant's rows with received_at in [since, until), summed per month, savings kind and requested model."""
    params = {"tenant_id": tenant_id, "since_us": to_micros(since), "until_us": to_micros(until)}
    return [
        LedgerGroup(
            month=Month.from_yyyymm(int(month)), kind=str(kind), model=str(model),
            sums=Sums(int(calls), baseline, actual, savings), price_versions=frozenset(versions),
        )
        for month, kind, model, calls, baseline, actual, savings, versions in store.query(_SQL, params)
    ]
