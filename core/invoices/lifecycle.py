"""After issue: marking paid, voiding, listing and reading stored invoices; the enterprise fee rate."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.invoices.document import iso, rate_text
from core.invoices.records import InvoiceRecord
from core.invoices.service import rendered
from core.invoices.terms import InvoiceError
from core.tenants import tenant_by_name


async def _record(session: AsyncSession, number: str) -> InvoiceRecord:
    record = await session.get(InvoiceRecord, number, with_for_update=True)
    if record is None:
        raise InvoiceError(f"no invoice numbered {number!r}; `netra invoices list` shows them")
    return record


async def mark_paid(session: AsyncSession, number: str, now: datetime) -> dict[str, Any]:
    """issued → paid (a paid invoice stays as it is; a void one cannot be paid)."""
    record = await _record(session, number)
    if record.status == "void":
        raise InvoiceError(f"{number} is void and cannot be paid" + _replacement(record))
    if record.status == "issued":
        record.status, record.paid_at = "paid", now
        await session.commit()
    return rendered(record)


def _replacement(record: InvoiceRecord) -> str:
    return f"; it was replaced by {record.replaced_by}" if record.replaced_by else ""


async def void(session: AsyncSession, number: str, now: datetime) -> dict[str, Any]:
    """issued → void (a void invoice stays as it is; a paid one cannot be voided); its month may be issued anew."""
    record = await _record(session, number)
    if record.status == "paid":
        raise InvoiceError(f"{number} is paid and cannot be voided; credit the difference on a later invoice")
    if record.status == "issued":
        record.status, record.voided_at, record.open_key = "void", now, None
        await session.commit()
    return rendered(record)


async def stored(session: AsyncSession, number: str) -> dict[str, Any]:
    """A stored invoice by number."""
    return rendered(await _record(session, number))


def _summary(record: InvoiceRecord) -> dict[str, Any]:
    doc = json.loads(record.content)
    return {
        "number": record.number, "tenant": doc["tenant"], "period": record.period, "status": record.status,
        "savings": doc["savings"], "fee": doc["fee"], "net_benefit": doc["net_benefit"],
        "issued_at": iso(record.issued_at), "paid_at": iso(record.paid_at), "voided_at": iso(record.voided_at),
        "replaced_by": record.replaced_by,
    }


async def list_invoices(session: AsyncSession, tenant_name: str | None = None) -> list[dict[str, Any]]:
    """Issued invoices (any status), oldest number first, optionally of one tenant."""
    query = select(InvoiceRecord).order_by(InvoiceRecord.issued_at, InvoiceRecord.number)
    if tenant_name is not None:
        query = query.where(InvoiceRecord.tenant_id == (await tenant_by_name(session, tenant_name)).id)
    return [_summary(record) for record in (await session.scalars(query)).all()]


async def set_fee_rate(session: AsyncSession, tenant_name: str, rate: Decimal | None) -> str:
    """Set (or clear, with None) an enterprise tenant's own fee rate; returns the rate as stored."""
    tenant = await tenant_by_name(session, tenant_name)
    if tenant.tier != "enterprise":
        raise InvoiceError(f"{tenant_name} is on tier {tenant.tier}: only enterprise tenants have their own fee rate")
    tenant.fee_rate = None if rate is None else rate_text(rate)
    await session.commit()
    return tenant.fee_rate or "0.20 (the default)"
