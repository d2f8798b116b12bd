"""Tenants and keys, provider credentials, users and the audit log, as pages (their forms: account_forms.py)."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from admin.dashboard.web import page
from admin.provider_views import configured_providers, entry
from admin.state import get_state
from core import audit
from core.credentials import read_overrides
from core.errors import NetraError
from core.models import TIERS, ApiKey
from core.tenants import list_tenants
from core.user_store import list_users

AUDIT_PAGE = 100


async def tenants(request: Request) -> Response:
    """Every tenant with its tier, status and keys (display prefixes only: a key is shown once, at creation)."""
    async with get_state(request).sessions() as session:
        found = await list_tenants(session)
        keys = (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()
    by_tenant: dict[str, list[ApiKey]] = {}
    for key in keys:
        by_tenant.setdefault(key.tenant_id, []).append(key)
    return page(request, "tenants.html", title="Tenants and keys", tenants=found, keys=by_tenant, tiers=TIERS)


async def credentials(request: Request) -> Response:
    """The providers the gateway calls: base URL and key (its last four characters) and where each comes from."""
    state = get_state(request)
    try:
        providers = await configured_providers(state.settings)
    except NetraError as exc:
        return page(request, "credentials.html", title="Provider credentials", providers=[], problem=exc.message)
    async with state.sessions() as session:
        overrides = (await read_overrides(session)).credentials
    shown = [entry(provider, overrides.get(name)) for name, provider in providers.items()]
    return page(request, "credentials.html", title="Provider credentials", providers=shown, problem=None)


async def users(request: Request) -> Response:
    """Every admin user and role."""
    async with get_state(request).sessions() as session:
        found = await list_users(session)
    return page(request, "users.html", title="Users", users=found)


async def audit_log(request: Request) -> Response:
    """The newest audit entries; `before` (an entry id) pages back."""
    raw = request.query_params.get("before", "")
    before = int(raw) if raw.isdigit() and 0 < int(raw) < 2**63 else None
    async with get_state(request).sessions() as session:
        entries = await audit.entries(session, limit=AUDIT_PAGE, before_id=before)
    older = entries[-1].id if len(entries) == AUDIT_PAGE else None
    return page(request, "audit.html", title="Audit log", entries=entries, older=older)
