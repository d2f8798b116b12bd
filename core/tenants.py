"""Tenants and keys in the relational store: what the CLI manages and the gateway's auth reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.keys import generate_key, new_id
from core.models import TIERS, ApiKey, Tenant, utcnow


class TenantError(ValueError):
    """A tenant or key operation that cannot be carried out, with a message for the operator."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What auth needs to know about a key, detached from the session."""

    key_id: str
    key_hash: str
    tenant_id: str
    tenant_name: str
    tier: str
    tenant_status: str
    allowed_models: frozenset[str]
    expires_at: datetime | None
    revoked: bool


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise TenantError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")


async def create_tenant(session: AsyncSession, name: str, tier: str = "free") -> Tenant:
    """Create a tenant; names are unique."""
    _check_tier(tier)
    tenant = Tenant(id=new_id("ten"), name=name, tier=tier, status="active", created_at=utcnow())
    session.add(tenant)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise TenantError(f"tenant {name!r} already exists") from exc
    return tenant


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    """All tenants, oldest first."""
    return list((await session.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.name))).all())


async def tenant_by_name(session: AsyncSession, name: str) -> Tenant:
    """The tenant with this name, or an error saying there is none."""
    tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise TenantError(f"no tenant named {name!r}")
    return tenant


async def set_tenant_status(session: AsyncSession, name: str, status: str) -> Tenant:
    """Suspend or reactivate a tenant."""
    tenant = await tenant_by_name(session, name)
    tenant.status = status
    await session.commit()
    return tenant


async def set_tenant_tier(session: AsyncSession, name: str, tier: str) -> Tenant:
    """Move a tenant to another tier (its hourly request limit follows)."""
    _check_tier(tier)
    tenant = await tenant_by_name(session, name)
    tenant.tier = tier
    await session.commit()
    return tenant


async def create_key(
    session: AsyncSession, tenant_name: str, models: list[str], expires_in: timedelta | None
) -> tuple[ApiKey, str]:
    """Create a key for a tenant; returns the row and the plaintext, which is never stored."""
    tenant = await tenant_by_name(session, tenant_name)
    plaintext, prefix, key_hash = generate_key()
    now = utcnow()
    key = ApiKey(
        id=new_id("key"), tenant_id=tenant.id, key_hash=key_hash, prefix=prefix, allowed_models=sorted(set(models)),
        created_at=now, expires_at=now + expires_in if expires_in else None, revoked_at=None,
    )
    session.add(key)
    await session.commit()
    return key, plaintext


async def list_keys(session: AsyncSession, tenant_name: str) -> list[ApiKey]:
    """A tenant's keys, oldest first."""
    tenant = await tenant_by_name(session, tenant_name)
    query = select(ApiKey).where(ApiKey.tenant_id == tenant.id).order_by(ApiKey.created_at)
    return list((await session.scalars(query)).all())


async def revoke_key(session: AsyncSession, id_or_prefix: str) -> ApiKey:
    """Revoke one key named by its id or its display prefix."""
    query = select(ApiKey).where(or_(ApiKey.id == id_or_prefix, ApiKey.prefix == id_or_prefix))
    matches = list((await session.scalars(query)).all())
    if not matches:
        raise TenantError(f"no key with id or prefix {id_or_prefix!r}")
    if len(matches) > 1:
        raise TenantError(f"{id_or_prefix!r} matches {len(matches)} keys; use the key id")
    key = matches[0]
    if key.revoked_at is None:
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(revoked_at=utcnow()))
        await session.commit()
        await session.refresh(key)
    return key


async def find_key(session: AsyncSession, key_hash: str) -> KeyRecord | None:
    """The key with this hash and its tenant, or None."""
    query = select(ApiKey, Tenant).join(Tenant, Tenant.id == ApiKey.tenant_id).where(ApiKey.key_hash == key_hash)
    row = (await session.execute(query)).first()
    if row is None:
        return None
    key, tenant = row
    return KeyRecord(
        key_id=key.id, key_hash=key.key_hash, tenant_id=tenant.id, tenant_name=tenant.name, tier=tenant.tier,
        tenant_status=tenant.status, allowed_models=frozenset(key.allowed_models or ()), expires_at=key.expires_at,
        revoked=key.revoked_at is not None,
    )
