"""The invoice lifecycle: draft (recomputed on demand) → issued (immutable, numbered) → paid or void.

Drafts are never stored. Issuing stores the content, its hash and its basis in the transaction that takes the
number; issuing a month that has an invoice in force returns that invoice. A void invoice is replaced by a new
number when its month is issued again, never edited.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.invoices.adjustments import Basis, adjustments, billed
from core.invoices.compute import Group, Party, compute_invoice
from core.invoices.document import content, content_hash, document, iso
from core.invoices.ledger import ledger_groups
from core.invoices.numbering import next_number
from core.invoices.records import InvoiceRecord, open_key
from core.invoices.terms import InvoiceError, Month, fee_rate
from core.ledger_reader import LedgerReader
from core.models import Tenant
from core.tenants import tenant_by_name

IN_FORCE = ("issued", "paid")


@dataclass(frozen=True)
class Books:
    """Where invoices are computed from and kept: a ledger reader and the relational sessions."""

    sessions: async_sessionmaker[AsyncSession]
    store: LedgerReader


@dataclass(frozen=True)
class Draft:
    """A computed invoice's content and the exact sums it bills."""

    content: dict[str, Any]
    basis: Basis


def party(tenant: Tenant) -> Party:
    """The billing view of a tenant."""
    return Party(tenant.id, tenant.name, tenant.tier, fee_rate(tenant.tier, tenant.fee_rate))


def rendered(record: InvoiceRecord) -> dict[str, Any]:
    """A stored invoice in its JSON form, as issued, with its current status."""
    return document(
        json.loads(record.content), record.status, paid_at=record.paid_at, voided_at=record.voided_at,
        replaced_by=record.replaced_by,
    ) | {"content_hash": record.content_hash}


async def _in_force(session: AsyncSession, tenant_id: str) -> list[InvoiceRecord]:
    query = select(InvoiceRecord).where(InvoiceRecord.tenant_id == tenant_id, InvoiceRecord.status.in_(IN_FORCE))
    return list((await session.scalars(query)).all())


async def _draft(session: AsyncSession, store: LedgerReader, tenant: Tenant, month: Month) -> Draft:
    """The month's own rows plus adjustments for earlier months already invoiced, computed now."""
    records = [r for r in await _in_force(session, tenant.id) if Month.parse(r.period) < month]
    own = await asyncio.to_thread(ledger_groups, store, tenant.id, month.start, month.end)
    invoiced = {Month.parse(r.period) for r in records}
    since = min(invoiced).start if invoiced else month.start
    earlier = await asyncio.to_thread(ledger_groups, store, tenant.id, since, month.start) if invoiced else []
    late = adjustments(earlier, billed(Basis.from_json(r.basis) for r in records), invoiced)
    groups = [Group(month, g.kind, g.model, g.sums) for g in own] + late.groups
    versions = late.price_versions.union(*(g.price_versions for g in own))
    invoice = compute_invoice(party(tenant), month, groups, versions)
    basis = Basis(own={(month, g.kind, g.model): g.sums for g in own}, adjusted=late.differences)
    return Draft(content(invoice, number=None, issued_at=None, replaces=None), basis)


async def _open_record(session: AsyncSession, tenant_id: str, month: Month) -> InvoiceRecord | None:
    return await session.scalar(select(InvoiceRecord).where(InvoiceRecord.open_key == open_key(tenant_id, str(month))))


async def generate(books: Books, tenant_name: str, month: Month) -> dict[str, Any]:
    """The month's invoice in force when there is one, else a draft computed from the ledger now."""
    async with books.sessions() as session:
        tenant = await tenant_by_name(session, tenant_name)
        record = await _open_record(session, tenant.id, month)
        if record is not None:
            return rendered(record)
        draft = await _draft(session, books.store, tenant, month)
    return document(draft.content, "draft")


async def _lock_tenant(session: AsyncSession, name: str) -> Tenant:
    # Issuing for one tenant is serialised (PostgreSQL row lock): adjustments read what earlier issues billed.
    tenant = await session.scalar(select(Tenant).where(Tenant.name == name).with_for_update())
    return tenant if tenant is not None else await tenant_by_name(session, name)


async def _replaced(session: AsyncSession, tenant_id: str, month: Month) -> InvoiceRecord | None:
    """The newest void invoice of the month not yet replaced."""
    query = (
        select(InvoiceRecord)
        .where(InvoiceRecord.tenant_id == tenant_id, InvoiceRecord.period == str(month))
        .where(InvoiceRecord.status == "void", InvoiceRecord.replaced_by.is_(None))
        .order_by(InvoiceRecord.voided_at.desc())
    )
    return (await session.scalars(query)).first()


async def _store(session: AsyncSession, tenant: Tenant, month: Month, draft: Draft, now: datetime) -> InvoiceRecord:
    """Number the draft and add it to the session (the number is taken in the caller's transaction)."""
    number = await next_number(session, now.year)
    replaced = await _replaced(session, tenant.id, month)
    if replaced is not None:
        replaced.replaced_by = number
    doc = {**draft.content, "number": number, "issued_at": iso(now), "replaces": replaced and replaced.number}
    record = InvoiceRecord(
        number=number, tenant_id=tenant.id, period=str(month), status="issued",
        open_key=open_key(tenant.id, str(month)),
        content=json.dumps(doc, ensure_ascii=False), content_hash=content_hash(doc), basis=draft.basis.to_json(),
        issued_at=now, paid_at=None, voided_at=None, replaced_by=None,
    )
    session.add(record)
    return record


async def issue(books: Books, tenant_name: str, month: Month, now: datetime) -> dict[str, Any]:
    """Issue the month's invoice (idempotent: an invoice in force is returned as it is)."""
    if month.end > now:
        raise InvoiceError(f"{month} cannot be issued before it ends ({iso(month.end)}); generate a draft instead")
    async with books.sessions() as session:
        tenant = await _lock_tenant(session, tenant_name)
        existing = await _open_record(session, tenant.id, month)
        if existing is not None:
            return rendered(existing)
        record = await _store(session, tenant, month, await _draft(session, books.store, tenant, month), now)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()  # issued concurrently: that invoice stands, this number was given back
            existing = await _open_record(session, tenant.id, month)
            if existing is None:
                raise
            return rendered(existing)
        return rendered(record)
