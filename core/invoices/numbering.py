"""Gap-free invoice numbers per year: NET-2026-000001, NET-2026-000002, …

The counter row is incremented by an UPDATE inside the issuing transaction: on PostgreSQL the row stays locked
until that transaction ends, so concurrent issuers queue; a transaction that rolls back takes its number back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.invoices.records import InvoiceCounter

# Dialect name → its INSERT with ON CONFLICT (the first number of a year may be claimed by two issuers at once).
_INSERTS: dict[str, Callable[..., Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def invoice_number(year: int, sequence: int) -> str:
    """The printed number."""
    return f"NET-{year:04d}-{sequence:06d}"


async def next_number(session: AsyncSession, year: int) -> str:
    """Take the year's next number inside the caller's transaction (committed with it, or given back)."""
    insert = _INSERTS[session.get_bind().dialect.name]
    await session.execute(
        insert(InvoiceCounter).values(year=year, last_number=0).on_conflict_do_nothing(index_elements=["year"])
    )
    taken = await session.scalar(
        update(InvoiceCounter)
        .where(InvoiceCounter.year == year)
        .values(last_number=InvoiceCounter.last_number + 1)
        .returning(InvoiceCounter.last_number)
    )
    if taken is None:
        raise RuntimeError(f"the invoice counter of {year} vanished inside its transaction")
    return invoice_number(year, int(taken))
