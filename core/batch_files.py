"""Who owns each provider file and batch made through the Files and Batches passthrough, and what was last seen of it.

A tenant sees only its own objects: every lookup is by tenant and id, and lists come from here, never from the
provider (whose account all tenants share). Batch input files keep, per line, what the client asked for, so the
ledger rows of the batch's output can name the requested model; output files record their batch and whether their
lines have been written to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, UTCDateTime, utcnow

FILE, BATCH = "file", "batch"


class BatchObject(Base):
    """A provider's file or batch and the tenant (and key) that created it."""

    __tablename__ = "batch_objects"
    __table_args__ = (UniqueConstraint("provider", "object_id", name="uq_batch_objects_provider_object"),)

    # Insertion order: lists are newest first, and ids (the pagination cursors) are opaque strings.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(200))
    # A file's purpose (batch, batch_output, ...) or a batch's endpoint (/v1/chat/completions, ...).
    purpose: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Output and error files: the batch that produced them, and whether their lines are in the ledger.
    batch_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ledgered: Mapped[bool] = mapped_column(Boolean, default=False)
    # Batch input files: custom_id -> [endpoint, requested model, served model] of every line.
    lines: Mapped[dict[str, list[str]] | None] = mapped_column(JSON, nullable=True)


@dataclass(frozen=True, slots=True)
class Owner:
    """Who creates an object: the tenant and key, and the provider that holds it."""

    tenant_id: str
    key_id: str
    provider: str


async def record(
    session: AsyncSession, owner: Owner, kind: str, body: dict[str, Any], purpose: str, **extra: Any
) -> BatchObject:
    """Store a new object of the owner's (or refresh it when already stored); the caller commits."""
    object_id = str(body["id"])
    found = await session.scalar(
        select(BatchObject).where(BatchObject.provider == owner.provider, BatchObject.object_id == object_id)
    )
    if found is not None:
        found.body = body
        return found
    row = BatchObject(
        object_id=object_id, kind=kind, tenant_id=owner.tenant_id, key_id=owner.key_id, provider=owner.provider,
        purpose=purpose, body=body, **extra,
    )
    session.add(row)
    return row


async def owned(
    session: AsyncSession, tenant_id: str, kind: str, object_id: str, *, deleted_too: bool = False
) -> BatchObject | None:
    """The tenant's live object with this id, or None (another tenant's, deleted, or unknown: the same to a caller)."""
    stmt = select(BatchObject).where(
        BatchObject.tenant_id == tenant_id, BatchObject.kind == kind, BatchObject.object_id == object_id
    )
    if not deleted_too:
        stmt = stmt.where(BatchObject.deleted.is_(False))
    return await session.scalar(stmt.order_by(BatchObject.seq.desc()).limit(1))


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of a tenant's objects: after which id, how many, in which order, narrowed how."""

    tenant_id: str
    kind: str
    limit: int
    after: str | None = None
    newest_first: bool = True
    purpose: str | None = None
    provider: str | None = None


async def page(session: AsyncSession, query: PageQuery) -> tuple[list[BatchObject], bool]:
    """The page's objects and whether more follow it."""
    stmt = select(BatchObject).where(
        BatchObject.tenant_id == query.tenant_id, BatchObject.kind == query.kind, BatchObject.deleted.is_(False)
    )
    if query.purpose is not None:
        stmt = stmt.where(BatchObject.purpose == query.purpose)
    if query.provider is not None:
        stmt = stmt.where(BatchObject.provider == query.provider)
    if query.after is not None:
        cursor = await owned(session, query.tenant_id, query.kind, query.after)
        if cursor is not None:
            stmt = stmt.where(BatchObject.seq < cursor.seq if query.newest_first else BatchObject.seq > cursor.seq)
    order = BatchObject.seq.desc() if query.newest_first else BatchObject.seq.asc()
    rows = list((await session.scalars(stmt.order_by(order).limit(query.limit + 1))).all())
    return rows[: query.limit], len(rows) > query.limit


async def mark_ledgered(session: AsyncSession, seq: int) -> None:
    """Note that an output file's lines are in the ledger (after they were written to it); the caller commits."""
    await session.execute(update(BatchObject).where(BatchObject.seq == seq).values(ledgered=True))


async def mark_deleted(session: AsyncSession, seq: int) -> None:
    """Note that a file was deleted at the provider; the caller commits."""
    await session.execute(update(BatchObject).where(BatchObject.seq == seq).values(deleted=True))
