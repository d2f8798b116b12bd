"""The relational store on a real PostgreSQL: migrations, tenants and keys, and gateway auth."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import AuthenticationFailed, TenantSuspended
from core.keys import hash_key
from core.migrate import alembic_config, upgrade_relational
from core.settings import Settings
from core.tenants import (
    TenantError,
    create_key,
    create_tenant,
    find_key,
    list_keys,
    list_tenants,
    revoke_key,
    set_tenant_status,
)
from gateway.auth import KeyAuthenticator
from tests.unit.helpers import Clock, tenant_with_key

pytestmark = pytest.mark.postgres


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_migrations_create_the_schema_and_are_idempotent(pg_settings: Settings, pg_url: str) -> None:
    await asyncio.to_thread(upgrade_relational, pg_settings)
    await asyncio.to_thread(upgrade_relational, pg_settings)  # a second run changes nothing
    conn = await asyncpg.connect(_asyncpg_dsn(pg_url))
    try:
        tables = {r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )}
        version = await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    assert {"tenants", "api_keys", "price_versions", "alembic_version"} <= tables
    assert version == ScriptDirectory.from_config(alembic_config(pg_settings)).get_current_head()


async def test_tenants_are_created_and_listed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        await create_tenant(session, "acme", "enterprise")
        await create_tenant(session, "globex")
    async with sessions() as session:
        tenants = await list_tenants(session)
    assert [(t.name, t.tier, t.status) for t in tenants] == [("acme", "enterprise", "active"),
                                                             ("globex", "free", "active")]
    assert all(t.created_at.tzinfo is not None for t in tenants)


async def test_duplicate_tenant_name_is_refused_and_the_session_stays_usable(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        await create_tenant(session, "acme")
        with pytest.raises(TenantError, match="already exists"):
            await create_tenant(session, "acme", "mid")
        await create_tenant(session, "initech")
    async with sessions() as session:
        assert [t.name for t in await list_tenants(session)] == ["acme", "initech"]


async def test_unknown_tier_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        with pytest.raises(TenantError, match="unknown tier"):
            await create_tenant(session, "acme", "platinum")


async def test_keys_are_created_listed_and_revoked(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        await create_tenant(session, "acme")
        first, plaintext = await create_key(session, "acme", ["gpt-4o", "gpt-4o-mini", "gpt-4o"], timedelta(days=1))
        second, _ = await create_key(session, "acme", [], None)
    assert plaintext.startswith("nk-") and first.prefix == plaintext[: len(first.prefix)]
    assert first.key_hash == hash_key(plaintext) and plaintext not in first.key_hash
    async with sessions() as session:
        keys = await list_keys(session, "acme")
        record = await find_key(session, hash_key(plaintext))
    assert [k.id for k in keys] == [first.id, second.id]
    assert record is not None
    assert record.allowed_models == frozenset({"gpt-4o", "gpt-4o-mini"})
    assert record.expires_at is not None and record.expires_at.tzinfo is not None
    assert not record.revoked

    async with sessions() as session:
        revoked = await revoke_key(session, first.prefix)
        again = await revoke_key(session, first.id)  # revoking twice keeps the first time
    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at
    async with sessions() as session:
        record = await find_key(session, hash_key(plaintext))
    assert record is not None and record.revoked


async def test_revoking_an_unknown_key_is_an_error(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        with pytest.raises(TenantError, match="no key"):
            await revoke_key(session, "key_doesnotexist")
        with pytest.raises(TenantError, match="no tenant"):
            await create_key(session, "nobody", [], None)


async def test_auth_against_postgres(sessions: async_sessionmaker[AsyncSession]) -> None:
    clock = Clock()
    auth = KeyAuthenticator(sessions, ttl=5.0, clock=clock)
    key = await tenant_with_key(sessions, "acme", tier="mid", models=["gpt-4o-mini"], expires_in=timedelta(hours=1))
    principal = await auth.authenticate(f"Bearer {key}")
    assert (principal.tenant_name, principal.tier, principal.allowed_models) == (
        "acme", "mid", frozenset({"gpt-4o-mini"})
    )
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate("Bearer nk-unknown-key")
    assert caught.value.code == "invalid_api_key"

    async with sessions() as session:
        (stored,) = await list_keys(session, "acme")
        await revoke_key(session, stored.id)
    clock.advance(6)
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {key}")


async def test_auth_refuses_expired_keys_and_suspended_tenants_on_postgres(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    auth = KeyAuthenticator(sessions, ttl=5.0)
    expired = await tenant_with_key(sessions, "old", expires_in=timedelta(seconds=-1))
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {expired}")

    suspended = await tenant_with_key(sessions, "frozen")
    async with sessions() as session:
        await set_tenant_status(session, "frozen", "suspended")
    with pytest.raises(TenantSuspended):
        await auth.authenticate(f"Bearer {suspended}")
