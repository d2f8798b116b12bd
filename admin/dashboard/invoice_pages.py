"""The Invoices pages: the list, one invoice (issued, or a draft computed now), issuing, and downloads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin.api_params import actor_of
from admin.dashboard.ledger import LedgerUnavailable
from admin.dashboard.web import page, pages_of
from admin.services import invoices as invoice_service
from admin.services.invoices import parse_month
from admin.state import get_state
from core.errors import InvalidParameter, NotFound, ServiceUnavailable
from core.invoices.csvform import render_csv
from core.invoices.lifecycle import list_invoices, stored
from core.invoices.pdfform import render_pdf
from core.invoices.service import Books, generate
from core.invoices.terms import InvoiceError, Month
from core.tenants import TenantError, list_tenants, tenant_by_name

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


async def issue_invoice(request: Request) -> Response:
    """Issue a tenant's month from the form (the API's service: audited in the same commit; issuing again returns
    the invoice in force)."""
    form, state = await request.form(), get_state(request)
    try:
        async with state.sessions() as session:
            tenant = await tenant_by_name(session, str(form.get("tenant", "")))
        month = parse_month(str(form.get("month", "")))
        doc = await invoice_service.issue(
            state.sessions, state.ledger, actor_of(request), (tenant.id, month), state.clock().replace(microsecond=0)
        )
    except ServiceUnavailable:
        return page(request, "ledger_unavailable.html", title="Invoices")
    except (InvoiceError, TenantError, InvalidParameter) as exc:
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
