"""The audit log: who changed what, when, from where, with the state before and after. Rows are only added."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import utcnow
from core.users import AuditEntry


def record(
    session: AsyncSession, actor: str, action: str, target: tuple[str, str], *,
    before: dict[str, Any] | None, after: dict[str, Any] | None, address: str | None = None,
) -> AuditEntry:
    """Add an entry to the session, to be committed with the change it describes (one transaction, both or none)."""
    target_type, target_id = target
    entry = AuditEntry(
        at=utcnow(), actor=actor, action=action, target_type=target_type, target_id=target_id,
        before=before, after=after, address=address,
    )
    session.add(entry)
    return entry


async def entries(session: AsyncSession, *, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
    """The newest entries first, `limit` of them, older than `before_id` when given (to page back)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list((await session.scalars(query)).all())
