"""Tenants and their keys, as the CLI manages them (core/tenants.py), with an audit entry for every change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from admin.errors import Conflict
from admin.services.changes import Actor, Change, added, audited
from core import tenants as core_tenants
from core.errors import InvalidParameter, NotFound
from core.models import TIER_HOURLY_LIMITS, TIERS, ApiKey, Tenant, utcnow
from policies.models import parse_duration

Sessions = async_sessionmaker[AsyncSession]
TENANT_STATUSES = ("active", "suspended")
MAX_NAME = 200
SetField = Callable[[AsyncSession, str, str], Awaitable[Tenant]]


def tenant_dict(tenant: Tenant) -> dict[str, Any]:
    """A tenant as the API shows it."""
    return {
        "id": tenant.id, "name": tenant.name, "tier": tenant.tier, "status": tenant.status,
        "hourly_request_limit": TIER_HOURLY_LIMITS.get(tenant.tier), "fee_rate": tenant.fee_rate,
        "created_at": tenant.created_at.isoformat(),
    }


def key_status(key: ApiKey) -> str:
    """active, revoked or expired."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= utcnow():
        return "expired"
    return "active"


def key_dict(key: ApiKey) -> dict[str, Any]:
    """A key as the API shows it: its prefix, never the key or its hash; `models` empty means every model."""
    return {
        "id": key.id, "tenant_id": key.tenant_id, "prefix": key.prefix, "status": key_status(key),
        "models": list(key.allowed_models or []), "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def check_name(name: str) -> str:
    """A tenant name as given (any characters are data), or a 400: empty, too long, or control characters."""
    if not name.strip() or len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidParameter(
            f"'name' must be 1 to {MAX_NAME} characters without control characters.", code="invalid_value",
            param="name")
    return name


def check_tier(tier: str) -> str:
    """A known tier, or a 400 naming the tiers."""
    if tier not in TIERS:
        raise InvalidParameter(f"'tier' must be one of {', '.join(TIERS)}.", code="invalid_value", param="tier")
    return tier


async def tenant_by_id(session: AsyncSession, tenant_id: str) -> Tenant:
    """The tenant with this id, or a 404."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("No such tenant.", code="tenant_not_found", param="tenant_id")
    return tenant


async def list_tenants(sessions: Sessions, status: str | None = None) -> list[Tenant]:
    """Every tenant (optionally of one status), oldest first."""
    async with sessions() as session:
        tenants = await core_tenants.list_tenants(session)
    return [t for t in tenants if status is None or t.status == status]


async def get_tenant(sessions: Sessions, tenant_id: str) -> Tenant:
    """One tenant, or a 404."""
    async with sessions() as session:
        return await tenant_by_id(session, tenant_id)


async def create_tenant(sessions: Sessions, actor: Actor, name: str, tier: str) -> Tenant:
    """A new tenant; 409 when the name is taken."""
    name, tier = check_name(name), check_tier(tier)

    def describe(committing: Session) -> list[Change]:
        return [Change("tenant.create", "tenant", t.id, None, tenant_dict(t)) for t in added(committing, Tenant)]

    async with sessions() as session:
        with audited(session, actor, describe):
            try:
                return await core_tenants.create_tenant(session, name, tier)
            except core_tenants.TenantError as exc:
                raise Conflict("A tenant with this name exists already.", code="tenant_exists", param="name") from exc


async def _change_tenant(
    sessions: Sessions, actor: Actor, tenant_id: str, action: str, change: tuple[SetField, str, str],
) -> Tenant:
    """Set a tenant's tier or status through core/tenants.py; already so: unchanged, no entry."""
    setter, field, value = change
    async with sessions() as session:
        tenant = await tenant_by_id(session, tenant_id)
        if getattr(tenant, field) == value:
            return tenant
        before = tenant_dict(tenant)
        with audited(session, actor, lambda _: [Change(action, "tenant", tenant.id, before, tenant_dict(tenant))]):
            return await setter(session, tenant.name, value)


async def set_tier(sessions: Sessions, actor: Actor, tenant_id: str, tier: str) -> Tenant:
    """Move a tenant to another tier (its hourly limit and fee rate follow)."""
    change = (core_tenants.set_tenant_tier, "tier", check_tier(tier))
    return await _change_tenant(sessions, actor, tenant_id, "tenant.tier", change)


async def set_status(sessions: Sessions, actor: Actor, tenant_id: str, status: str) -> Tenant:
    """Suspend (its keys are refused with 403) or reactivate a tenant."""
    action = "tenant.suspend" if status == "suspended" else "tenant.activate"
    change = (core_tenants.set_tenant_status, "status", status)
    return await _change_tenant(sessions, actor, tenant_id, action, change)


async def list_keys(sessions: Sessions, tenant_id: str) -> list[ApiKey]:
    """A tenant's keys, oldest first; 404 for an unknown tenant."""
    async with sessions() as session:
        tenant = await tenant_by_id(session, tenant_id)
        return await core_tenants.list_keys(session, tenant.name)


def check_models(models: list[str]) -> list[str]:
    """The models a key may use (empty: every model), each a non-empty name."""
    cleaned = [m.strip() for m in models]
    if any(not m or len(m) > MAX_NAME for m in cleaned):
        raise InvalidParameter(f"'models' must hold names of 1 to {MAX_NAME} characters.", code="invalid_value",
                               param="models")
    return cleaned


def check_expiry(expires_in: str | int | None) -> timedelta | None:
    """`expires_in` as 30d, 12h, 90m, 3600s or seconds; None: the key never expires."""
    if expires_in is None:
        return None
    try:
        return timedelta(seconds=parse_duration(expires_in))
    except ValueError as exc:
        raise InvalidParameter(f"'expires_in' {exc}.", code="invalid_value", param="expires_in") from exc


async def create_key(
    sessions: Sessions, actor: Actor, tenant_id: str, models: list[str], expires_in: timedelta | None
) -> tuple[ApiKey, str]:
    """A new key for a tenant: the row and the key itself, which is shown this once and never stored."""

    def describe(committing: Session) -> list[Change]:
        return [Change("key.create", "api_key", k.id, None, key_dict(k)) for k in added(committing, ApiKey)]

    async with sessions() as session:
        tenant = await tenant_by_id(session, tenant_id)
        with audited(session, actor, describe):
            return await core_tenants.create_key(session, tenant.name, check_models(models), expires_in)


async def revoke_key(sessions: Sessions, actor: Actor, key_id: str) -> ApiKey:
    """Revoke a key by id (already revoked: unchanged, no entry); 404 for an unknown id."""
    async with sessions() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id))
        if key is None:
            raise NotFound("No such key.", code="key_not_found", param="key_id")
        if key.revoked_at is not None:
            return key
        before = key_dict(key)
        with audited(session, actor, lambda _: [Change("key.revoke", "api_key", key.id, before, key_dict(key))]):
            return await core_tenants.revoke_key(session, key.id)
