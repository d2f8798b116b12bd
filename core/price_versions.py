"""Price versions kept in the relational store, so every ledger row's prices can be looked up later."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import PriceVersion, utcnow
from core.prices import PriceTable


async def save_price_version(session: AsyncSession, table: PriceTable) -> bool:
    """Store the table under its version id unless it is already there; True if it was new."""
    if await session.scalar(select(PriceVersion.version).where(PriceVersion.version == table.version)):
        return False
    session.add(PriceVersion(
        version=table.version, effective_from=table.effective_from, created_at=utcnow(), table_json=table.to_json(),
    ))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()  # another process stored it first
        return False
    return True


async def list_price_versions(session: AsyncSession) -> list[PriceVersion]:
    """Every stored version, oldest first."""
    return list((await session.scalars(select(PriceVersion).order_by(PriceVersion.created_at))).all())


async def price_version_json(session: AsyncSession, version: str) -> str | None:
    """The stored table of a version, as JSON."""
    return await session.scalar(select(PriceVersion.table_json).where(PriceVersion.version == version))
