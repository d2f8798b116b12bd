"""REST API: savings invoices (finance and admin): list, a draft on demand, issue, mark paid, void, files."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin.api_params import actor_of, choice, page_of, paged
from admin.api_schemas import STRING, obj
from admin.apispec import JSON, PAGING, Endpoint, Operation, Param, ok, path_param, ref
from admin.apispec import page_of as page_schema
from admin.body import read_object, string_field
from admin.services import invoices
from admin.state import get_state
from core.errors import InvalidParameter

TAG = "invoices"
NUMBER = path_param("number", "the invoice number, e.g. NET-2026-000001")


def _query(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise InvalidParameter(f"Missing required parameter: '{name}'.", code="missing_required_parameter",
                               param=name)
    return value


async def _file(doc: dict[str, Any], fmt: str, name: str) -> Response:
    data, media = await invoices.render(doc, fmt)
    disposition = f'attachment; filename="{name}.{fmt}"'
    return Response(data, media_type=media, headers={"content-disposition": disposition})


async def invoices_list(request: Request) -> Response:
    """Issued invoices, oldest first, of one tenant and one status when asked."""
    status = choice(request, "status", invoices.LIST_STATUSES)
    rows = await invoices.list_invoices(get_state(request).sessions, request.query_params.get("tenant_id"), status)
    return JSONResponse(paged(rows, page_of(request), lambda row: row))


async def invoices_draft(request: Request) -> Response:
    """A tenant's month: the invoice in force, else a draft computed from the ledger now (JSON, CSV or PDF)."""
    tenant_id, month = _query(request, "tenant_id"), invoices.parse_month(_query(request, "month"))
    fmt = choice(request, "format", tuple(invoices.FORMATS)) or "json"
    state = get_state(request)
    doc = await invoices.draft(state.sessions, state.ledger, tenant_id, month)
    if fmt == "json":
        return JSONResponse(doc)
    return await _file(doc, fmt, f"invoice-{doc['number'] or f'draft-{tenant_id}-{month}'}")


async def invoices_issue(request: Request) -> Response:
    """Issue a tenant's ended month from {"tenant_id", "month"}; issuing again returns the same invoice."""
    body = await read_object(request)
    tenant_id, month = string_field(body, "tenant_id"), invoices.parse_month(string_field(body, "month"))
    state = get_state(request)
    doc = await invoices.issue(state.sessions, state.ledger, actor_of(request), (tenant_id, month), state.clock())
    return JSONResponse(doc)


async def invoices_get(request: Request) -> Response:
    """An issued invoice with its current status."""
    return JSONResponse(await invoices.stored(get_state(request).sessions, request.path_params["number"]))


async def invoices_download(request: Request) -> Response:
    """An issued invoice as a file: JSON, CSV or PDF."""
    fmt = choice(request, "format", tuple(invoices.FORMATS)) or "pdf"
    doc = await invoices.stored(get_state(request).sessions, request.path_params["number"])
    return await _file(doc, fmt, f"invoice-{doc['number']}")


async def invoices_paid(request: Request) -> Response:
    """Mark an issued invoice paid."""
    state = get_state(request)
    return JSONResponse(await invoices.mark_paid(state.sessions, actor_of(request), request.path_params["number"],
                                                 state.clock()))


async def invoices_void(request: Request) -> Response:
    """Void an issued invoice; its month may be issued again under a new number."""
    state = get_state(request)
    return JSONResponse(await invoices.void(state.sessions, actor_of(request), request.path_params["number"],
                                            state.clock()))


FORMAT = Param("format", "query", {"type": "string", "enum": list(invoices.FORMATS)}, "json, csv or pdf")
MONTH = {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$", "description": "a calendar month (UTC), YYYY-MM"}
FILES = {200: {JSON: ref("Invoice"), "text/csv": STRING, "application/pdf": {"type": "string", "format": "binary"}}}
ENDPOINTS = [
    Endpoint("GET", "/api/invoices", invoices_list, "finance", Operation(
        "List issued invoices", TAG,
        (Param("tenant_id", "query", STRING, "one tenant's invoices"),
         Param("status", "query", {"enum": list(invoices.LIST_STATUSES)}, "only this status"), *PAGING),
        responses=ok(page_schema(ref("InvoiceSummary"))))),
    Endpoint("POST", "/api/invoices", invoices_issue, "finance", Operation(
        "Issue a tenant's month", TAG, body=obj({"tenant_id": STRING, "month": MONTH}),
        responses=ok(ref("Invoice")))),
    Endpoint("GET", "/api/invoices/draft", invoices_draft, "finance", Operation(
        "A tenant's month: the invoice in force or a draft computed now", TAG,
        (Param("tenant_id", "query", STRING, "the tenant", required=True),
         Param("month", "query", MONTH, "the month", required=True), FORMAT),
        responses=FILES)),
    Endpoint("GET", "/api/invoices/{number}", invoices_get, "finance", Operation(
        "Show an issued invoice", TAG, (NUMBER,), responses=ok(ref("Invoice")))),
    Endpoint("GET", "/api/invoices/{number}/download", invoices_download, "finance", Operation(
        "Download an issued invoice (JSON, CSV or PDF; PDF by default)", TAG, (NUMBER, FORMAT),
        responses=FILES)),
    Endpoint("POST", "/api/invoices/{number}/paid", invoices_paid, "finance", Operation(
        "Mark an invoice paid", TAG, (NUMBER,), responses=ok(ref("Invoice")))),
    Endpoint("POST", "/api/invoices/{number}/void", invoices_void, "finance", Operation(
        "Void an invoice", TAG, (NUMBER,), responses=ok(ref("Invoice")))),
]
