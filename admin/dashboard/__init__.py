"""The dashboard: server-rendered pages (Jinja2, autoescaped), pygal SVG charts, plain HTML forms with CSRF tokens.

`ROUTES` and `PERMISSIONS` are registered by admin/routes.py and admin/permissions.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from admin.dashboard import account_forms, account_pages, analytics_pages, invoice_pages, policy_pages
from admin.dashboard.web import pages_of


async def charts_css(request: Request) -> Response:
    """The charts' stylesheet (pygal's CSS, served from here because the CSP forbids inline styles)."""
    return Response(pages_of(request).chart_css, media_type="text/css; charset=utf-8",
                    headers={"cache-control": "public, max-age=3600"})


ROUTES: list[BaseRoute] = [
    Route("/", analytics_pages.overview, methods=["GET"]),
    Route("/charts.css", charts_css, methods=["GET"]),
    Route("/savings", analytics_pages.savings, methods=["GET"]),
    Route("/calls", analytics_pages.calls, methods=["GET"]),
    Route("/policies", policy_pages.policies_list, methods=["GET"]),
    Route("/policies/{policy_id}", policy_pages.policy_detail, methods=["GET"]),
    Route("/policies/{policy_id}/{action}", policy_pages.policy_change, methods=["POST"]),
    Route("/tenants", account_pages.tenants, methods=["GET"]),
    Route("/tenants", account_forms.tenant_create, methods=["POST"]),
    Route("/tenants/{tenant_id}/keys", account_forms.key_create, methods=["POST"]),  # before the next: "keys"
    Route("/tenants/{tenant_id}/{action}", account_forms.tenant_change, methods=["POST"]),
    Route("/keys/{key_id}/{action}", account_forms.key_change, methods=["POST"]),
    Route("/credentials", account_pages.credentials, methods=["GET"]),
    Route("/credentials/{name}/{action}", account_forms.credential_change, methods=["POST"]),
    Route("/invoices", invoice_pages.invoices, methods=["GET"]),
    Route("/invoices", invoice_pages.issue_invoice, methods=["POST"]),
    Route("/invoices/draft", invoice_pages.draft, methods=["GET"]),
    Route("/invoices/{number}", invoice_pages.invoice, methods=["GET"]),
    Route("/invoices/{number}/download/{format}", invoice_pages.download, methods=["GET"]),
    Route("/users", account_pages.users, methods=["GET"]),
    Route("/audit", account_pages.audit_log, methods=["GET"]),
]

# admin: everything; finance: invoices and analytics, tenants read-only; viewer: analytics and policies, read-only.
PERMISSIONS: Mapping[tuple[str, str], str] = {
    ("GET", "/"): "viewer",
    ("GET", "/charts.css"): "public",
    ("GET", "/savings"): "viewer",
    ("GET", "/calls"): "viewer",
    ("GET", "/policies"): "viewer",
    ("GET", "/policies/{policy_id}"): "viewer",
    ("POST", "/policies/{policy_id}/{action}"): "admin",
    ("GET", "/tenants"): "finance",
    ("POST", "/tenants"): "admin",
    ("POST", "/tenants/{tenant_id}/keys"): "admin",
    ("POST", "/tenants/{tenant_id}/{action}"): "admin",
    ("POST", "/keys/{key_id}/{action}"): "admin",
    ("GET", "/credentials"): "admin",
    ("POST", "/credentials/{name}/{action}"): "admin",
    ("GET", "/invoices"): "finance",
    ("POST", "/invoices"): "finance",
    ("GET", "/invoices/draft"): "finance",
    ("GET", "/invoices/{number}"): "finance",
    ("GET", "/invoices/{number}/download/{format}"): "finance",
    ("GET", "/users"): "admin",
    ("GET", "/audit"): "admin",
}
