"""The Invoices pages: the list, one invoice (issued, or a draft computed now), issuing, and downloads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin.dashboard.ledger import LedgerUnavailable
from admin.dashboard.web import page, pages_of, signed_in
from admin.principal import client_address
from admin.state import get_state
from core import audit
from core.errors import NotFound
from core.invoices.csvform import render_csv
from core.invoices.lifecycle import list_invoices, stored
from core.invoices.pdfform import render_pdf
from core.invoices.service import Books, generate, issue
from core.invoices.terms import InvoiceError, Month
from core.tenants import TenantError, list_tenants

DOWNLOADS: dict[str, tuple[str, Callable[[dict[str, Any]], bytes]]] = {
    "pdf": ("application/pdf", render_pdf),
    "csv": ("text/csv; charset=utf-8", lambda doc: render_csv(doc).encode("utf-8")),
    "json": ("application/json", lambda doc: json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")),
}


def last_month(now: datetime) -> str:
    """The month before `now`'s, as YYYY-MM: the newest one that can be issued."""
    return (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


async def invoices(request: Request) -> Response:
    """Issued invoices, newest first, and the form to issue (or preview) a tenant's month."""
    async with get_state(request).sessions() as session:
        found = await list_invoices(session)
        tenants = await list_tenants(session)
    return page(request, "invoices.html", title="Invoices", invoices=list(reversed(found)), tenants=tenants,
                month=last_month(get_state(request).clock()))


async def invoice(request: Request) -> Response:
    """One issued invoice by number."""
    async with get_state(request).sessions() as session:
        try:
            doc = await stored(session, request.path_params["number"])
        except InvoiceError as exc:
            raise NotFound("No such invoice.", code="invoice_not_found") from exc
    return page(request, "invoice.html", title=f"Invoice {doc['number']}", doc=doc)


async def draft(request: Request) -> Response:
    """A tenant's month computed from the ledger now (or the invoice in force for it)."""
    try:
        month = Month.parse(request.query_params.get("month", ""))
        async with pages_of(request).ledger.reading() as ledger:
            books = Books(get_state(request).sessions, ledger.reader)
            doc = await generate(books, request.query_params.get("tenant", ""), month)
    except LedgerUnavailable:
        return page(request, "ledger_unavailable.html", title="Invoices")
    except (InvoiceError, TenantError) as exc:
        return page(request, "refused.html", status=400, title="Invoices", message=str(exc))
    return page(request, "invoice.html", title=f"Draft invoice {doc['tenant']} {doc['period']}", doc=doc)


async def _issue(request: Request, books: Books, tenant: str, month: str) -> dict[str, Any]:
    doc = await issue(books, tenant, Month.parse(month), get_state(request).clock().replace(microsecond=0))
    async with get_state(request).sessions() as session:
        audit.record(session, signed_in(request), "invoice.issue", ("invoice", doc["number"]), before=None,
                     after={"number": doc["number"], "tenant": doc["tenant"], "period": doc["period"],
                            "content_hash": doc["content_hash"]}, address=client_address(request))
        await session.commit()
    return doc


async def issue_invoice(request: Request) -> Response:
    """Issue a tenant's month from the form (issuing it again returns the invoice in force)."""
    form = await request.form()
    try:
        async with pages_of(request).ledger.reading() as ledger:
            books = Books(get_state(request).sessions, ledger.reader)
            doc = await _issue(request, books, str(form.get("tenant", "")), str(form.get("month", "")))
    except LedgerUnavailable:
        return page(request, "ledger_unavailable.html", title="Invoices")
    except (InvoiceError, TenantError) as exc:
        return page(request, "refused.html", status=400, title="Invoices", message=str(exc))
    return RedirectResponse(f"/invoices/{doc['number']}", status_code=303)


async def download(request: Request) -> Response:
    """An issued invoice as PDF, CSV or JSON, as an attachment."""
    number, form = request.path_params["number"], request.path_params["format"]
    if form not in DOWNLOADS:
        raise NotFound("Not found.")
    async with get_state(request).sessions() as session:
        try:
            doc = await stored(session, number)
        except InvoiceError as exc:
            raise NotFound("No such invoice.", code="invoice_not_found") from exc
    media, render = DOWNLOADS[form]
    filename = f"invoice-{doc['number']}.{form}".replace('"', "")
    body = await asyncio.to_thread(render, doc)  # a PDF takes a while to lay out: off the event loop
    return Response(body, media_type=media, headers={"content-disposition": f'attachment; filename="{filename}"'})
