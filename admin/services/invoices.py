"""Invoices through core/invoices: drafts computed on demand, issue, mark paid, void, and the JSON/CSV/PDF files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from admin.errors import Conflict
from admin.ledger import READ_FAILURES, LedgerAccess, unavailable
from admin.services.changes import Actor, AuditedSessions, Change, added, audited
from admin.services.tenants import tenant_by_id
from core.errors import InvalidParameter, NotFound
from core.invoices import lifecycle, service
from core.invoices.csvform import render_csv
from core.invoices.document import iso
from core.invoices.pdfform import render_pdf
from core.invoices.records import STATUSES, InvoiceRecord
from core.invoices.terms import InvoiceError, Month

Sessions = async_sessionmaker[AsyncSession]
FORMATS: dict[str, tuple[str, Callable[[dict[str, Any]], bytes]]] = {
    "json": ("application/json", lambda doc: json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")),
    "csv": ("text/csv; charset=utf-8", lambda doc: render_csv(doc).encode("utf-8")),
    "pdf": ("application/pdf", render_pdf),
}
LIST_STATUSES = STATUSES


def record_dict(record: InvoiceRecord) -> dict[str, Any]:
    """An invoice's lifecycle as the audit log keeps it (its content never changes: the hash stands for it)."""
    return {
        "number": record.number, "tenant_id": record.tenant_id, "period": record.period, "status": record.status,
        "content_hash": record.content_hash, "issued_at": iso(record.issued_at), "paid_at": iso(record.paid_at),
        "voided_at": iso(record.voided_at), "replaced_by": record.replaced_by,
    }


def parse_month(text: str) -> Month:
    """A month from YYYY-MM, or a 400 naming `month`."""
    try:
        month = Month.parse(text)
    except InvoiceError as exc:
        raise InvalidParameter(str(exc), code="invalid_value", param="month") from exc
    if not 2000 <= month.year <= 9998:
        raise InvalidParameter("'month' must be a month from 2000-01 on.", code="invalid_value", param="month")
    return month


async def list_invoices(sessions: Sessions, tenant_id: str | None, status: str | None) -> list[dict[str, Any]]:
    """Issued invoices (of one tenant, of one status when given), oldest first."""
    async with sessions() as session:
        name = (await tenant_by_id(session, tenant_id)).name if tenant_id is not None else None
        rows = await lifecycle.list_invoices(session, name)
    return [r for r in rows if status is None or r["status"] == status]


async def _ledger_work(
    ledger: LedgerAccess, sessions: Sessions, work: Callable[[service.Books], Awaitable[Any]]
) -> Any:
    try:
        async with ledger.reader() as opened:
            return await work(service.Books(sessions, opened))
    except READ_FAILURES as exc:
        raise unavailable() from exc


async def draft(sessions: Sessions, ledger: LedgerAccess, tenant_id: str, month: Month) -> dict[str, Any]:
    """The month's invoice in force, else a draft computed from the ledger now."""
    async with sessions() as session:
        name = (await tenant_by_id(session, tenant_id)).name
    doc: dict[str, Any] = await _ledger_work(ledger, sessions, lambda books: service.generate(books, name, month))
    return doc


async def stored(sessions: Sessions, number: str) -> dict[str, Any]:
    """An issued invoice by number, with its current status; 404 when there is none."""
    async with sessions() as session:
        record = await session.get(InvoiceRecord, number)
        if record is None:
            raise NotFound("No such invoice.", code="invoice_not_found", param="number")
        return service.rendered(record)


def _issued(committing: Session) -> list[Change]:
    rows = added(committing, InvoiceRecord)
    return [Change("invoice.issue", "invoice", r.number, None, record_dict(r)) for r in rows]


async def issue(
    sessions: Sessions, ledger: LedgerAccess, actor: Actor, target: tuple[str, Month], now: datetime
) -> dict[str, Any]:
    """Issue a tenant's month once it has ended (idempotent: the invoice in force is returned as it is)."""
    tenant_id, month = target
    if month.end > now:
        raise InvalidParameter(f"{month} has not ended; view its draft instead.", code="invalid_value", param="month")
    async with sessions() as session:
        name = (await tenant_by_id(session, tenant_id)).name
    audited_sessions = cast(Sessions, AuditedSessions(sessions, actor, _issued))
    doc: dict[str, Any] = await _ledger_work(
        ledger, audited_sessions, lambda books: service.issue(books, name, month, now))
    return doc


Transition = Callable[[AsyncSession, str, datetime], Awaitable[dict[str, Any]]]


async def _transition(
    sessions: Sessions, actor: Actor, number: str, change: tuple[str, Transition], now: datetime
) -> dict[str, Any]:
    action, step = change
    async with sessions() as session:
        record = await session.get(InvoiceRecord, number)
        if record is None:
            raise NotFound("No such invoice.", code="invoice_not_found", param="number")
        before = record_dict(record)
        with audited(session, actor, lambda _: [Change(action, "invoice", number, before, record_dict(record))]):
            try:
                return await step(session, number, now)
            except InvoiceError as exc:
                raise Conflict(str(exc), code="invalid_invoice_state", param="number") from exc


async def mark_paid(sessions: Sessions, actor: Actor, number: str, now: datetime) -> dict[str, Any]:
    """issued → paid (already paid: unchanged; void: 409)."""
    return await _transition(sessions, actor, number, ("invoice.paid", lifecycle.mark_paid), now)


async def void(sessions: Sessions, actor: Actor, number: str, now: datetime) -> dict[str, Any]:
    """issued → void (already void: unchanged; paid: 409); the month may then be issued anew."""
    return await _transition(sessions, actor, number, ("invoice.void", lifecycle.void), now)


async def render(doc: dict[str, Any], fmt: str) -> tuple[bytes, str]:
    """The invoice's file in a format (json, csv, pdf) and its media type; the PDF is drawn off the event loop."""
    media, renderer = FORMATS[fmt]
    return await asyncio.to_thread(renderer, doc), media
