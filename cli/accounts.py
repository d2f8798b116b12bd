"""`netra tenants …` and `netra keys …`: they work against the database while the server runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.common import fail, parse_duration, with_session
from core.models import TIER_HOURLY_LIMITS, ApiKey, Tenant, utcnow
from core.settings import Settings
from core.tenants import (
    TenantError,
    create_key,
    create_tenant,
    list_keys,
    list_tenants,
    revoke_key,
    set_tenant_status,
    set_tenant_tier,
)


def _tenant_dict(t: Tenant) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "tier": t.tier, "status": t.status, "created_at": t.created_at.isoformat()}


def _key_status(k: ApiKey) -> str:
    if k.revoked_at is not None:
        return "revoked"
    if k.expires_at is not None and k.expires_at <= utcnow():
        return "expired"
    return "active"


def _key_dict(k: ApiKey) -> dict[str, Any]:
    """A key as JSON; `models` is the list it may use, empty for every configured model."""
    return {
        "id": k.id, "prefix": k.prefix, "status": _key_status(k), "models": list(k.allowed_models or []),
        "created_at": k.created_at.isoformat(), "expires_at": k.expires_at.isoformat() if k.expires_at else None,
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        # Models, as the operator typed them for `keys create --models`; none listed means every model.
        return ",".join(value) if value else "all"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: tuple[str, ...]) -> None:
    print(json.dumps(rows, indent=2) if as_json else _table(rows, columns))


def tenants_create(args: argparse.Namespace) -> int:
    """Create a tenant."""
    try:
        tenant = with_session(Settings(), lambda s: create_tenant(s, args.name, args.tier))
    except TenantError as exc:
        return fail(str(exc))
    print(f"created tenant {tenant.name} ({tenant.tier}) id={tenant.id}")
    return 0


def tenants_list(args: argparse.Namespace) -> int:
    """List tenants."""
    tenants = with_session(Settings(), list_tenants)
    _emit([_tenant_dict(t) for t in tenants], args.json, ("name", "tier", "status", "id", "created_at"))
    return 0


def tenants_status(args: argparse.Namespace) -> int:
    """Suspend or reactivate a tenant."""
    try:
        tenant = with_session(Settings(), lambda s: set_tenant_status(s, args.name, args.status))
    except TenantError as exc:
        return fail(str(exc))
    print(f"tenant {tenant.name} is now {tenant.status}")
    return 0


def tenants_tier(args: argparse.Namespace) -> int:
    """Move a tenant to another tier."""
    try:
        tenant = with_session(Settings(), lambda s: set_tenant_tier(s, args.name, args.tier))
    except TenantError as exc:
        return fail(str(exc))
    limit = TIER_HOURLY_LIMITS.get(tenant.tier)
    per_hour = "unlimited requests" if limit is None else f"{limit:,} requests/hour"
    print(f"tenant {tenant.name} is now on tier {tenant.tier} ({per_hour})")
    return 0


def keys_create(args: argparse.Namespace) -> int:
    """Create a key and print it alone on stdout."""
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        expires = parse_duration(args.expires_in) if args.expires_in else None
        _, plaintext = with_session(Settings(), lambda s: create_key(s, args.tenant, models, expires))
    except (TenantError, ValueError) as exc:
        return fail(str(exc))
    print(plaintext)
    return 0


def keys_list(args: argparse.Namespace) -> int:
    """List a tenant's keys (prefixes only; the keys themselves are never stored)."""
    try:
        keys = with_session(Settings(), lambda s: list_keys(s, args.tenant))
    except TenantError as exc:
        return fail(str(exc))
    _emit([_key_dict(k) for k in keys], args.json, ("id", "prefix", "status", "models", "created_at", "expires_at"))
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by id or prefix."""
    try:
        key = with_session(Settings(), lambda s: revoke_key(s, args.key))
    except TenantError as exc:
        return fail(str(exc))
    print(f"revoked key {key.id} ({key.prefix})")
    return 0
