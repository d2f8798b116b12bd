"""The policy store: every version a row, every status change an event, and one change counter gateways poll.

Lifecycle: ``proposed`` → ``active`` → ``retired``. An edit adds version N+1 with the same id; version N becomes
``superseded`` (or stays ``retired``), and the new version is ``active`` at once when N was active, else
``proposed``. A retired policy is not activated again: an edit proposes a new version. Every change bumps the
counter row first, in the same transaction, so changes are serialised and a poll reads one row to see them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.keys import new_id
from core.models import PolicyEvent, PolicyRevision, PolicyVersion, utcnow
from policies.models import AnyPolicy, parse_policy

log = logging.getLogger("netra.policies")

# Redis channel on which a change is announced; gateways also poll the counter, so a lost notice only delays.
CHANGES_CHANNEL = "netra:policies"
STATUSES = ("proposed", "active", "retired")
# Fields the rows hold in their own columns; the document keeps the rest of the policy as written.
_ROW_FIELDS = frozenset({"id", "version", "status", "created_at"})
_MAX_TEXT = 200


class PolicyStoreError(ValueError):
    """A policy change that cannot be made, with a one-line message for the operator."""


@dataclass(frozen=True, slots=True)
class PolicyHistory:
    """Every version of one policy (oldest first) and every event recorded for it."""

    versions: list[PolicyVersion]
    events: list[PolicyEvent]


async def policies_version(session: AsyncSession) -> int:
    """The change counter: it grows with every change to any policy (one row, one read)."""
    value = await session.scalar(select(PolicyRevision.version).where(PolicyRevision.id == 1))
    return int(value or 0)


async def _bump(session: AsyncSession) -> None:
    # Written first: the row lock (PostgreSQL) or the write lock (SQLite) serialises concurrent changes.
    result = await session.execute(
        update(PolicyRevision).where(PolicyRevision.id == 1).values(version=PolicyRevision.version + 1)
    )
    if getattr(result, "rowcount", 1) == 0:
        session.add(PolicyRevision(id=1, version=1))
        await session.flush()


def _record(session: AsyncSession, row: PolicyVersion, action: str, actor: str) -> None:
    session.add(PolicyEvent(policy_id=row.policy_id, version=row.version, action=action, actor=actor, at=utcnow()))


def _check_text(what: str, value: str) -> None:
    if len(value) > _MAX_TEXT:
        raise PolicyStoreError(f"{what} is {len(value)} characters long; at most {_MAX_TEXT} are stored")


def _row(policy: AnyPolicy, policy_id: str, version: int, status: str, actor: str) -> PolicyVersion:
    """A version row; the policy's own author is kept when it names one, else whoever makes the change."""
    author = policy.author if "author" in policy.model_fields_set else actor
    _check_text("the name", policy.name)
    _check_text("the author", author)
    document = policy.model_dump(mode="json", exclude=set(_ROW_FIELDS))
    document["author"] = author
    return PolicyVersion(
        policy_id=policy_id, version=version, kind=policy.kind, name=policy.name, status=status,
        priority=policy.priority, document=document, author=author, created_at=utcnow(),
    )


async def add_policies(session: AsyncSession, policies: Sequence[AnyPolicy], actor: str) -> list[str]:
    """Store each policy as version 1, ``proposed``, all or none; returns their new ids in order."""
    _check_text("the actor", actor)
    await _bump(session)
    rows = [_row(policy, new_id("pol"), 1, "proposed", actor) for policy in policies]
    for row in rows:
        session.add(row)
        _record(session, row, "added", actor)
    await session.commit()
    return [row.policy_id for row in rows]


async def _latest(session: AsyncSession, policy_id: str) -> PolicyVersion:
    query = select(PolicyVersion).where(PolicyVersion.policy_id == policy_id)
    row = await session.scalar(query.order_by(PolicyVersion.version.desc()).limit(1))
    if row is None:
        raise PolicyStoreError(f"no policy with id {policy_id!r} (`netra policies list` shows them)")
    return row


async def _set_status(session: AsyncSession, policy_id: str, status: str, action: str, actor: str) -> PolicyVersion:
    _check_text("the actor", actor)
    await _bump(session)
    try:
        row = await _latest(session, policy_id)
        if row.status == status:
            await session.rollback()  # nothing changes: no event, no new counter value
            await session.refresh(row)
            return row
        if row.status == "retired":
            raise PolicyStoreError(
                f"policy {policy_id} is retired; `netra policies edit {policy_id} FILE.yaml` proposes a new version"
            )
        row.status = status
        _record(session, row, action, actor)
        await session.commit()
    except PolicyStoreError:
        await session.rollback()
        raise
    return row


async def activate_policy(session: AsyncSession, policy_id: str, actor: str) -> PolicyVersion:
    """Make a proposed policy's newest version active (already active: nothing changes)."""
    return await _set_status(session, policy_id, "active", "activated", actor)


async def retire_policy(session: AsyncSession, policy_id: str, actor: str) -> PolicyVersion:
    """Retire a proposed or active policy (already retired: nothing changes)."""
    return await _set_status(session, policy_id, "retired", "retired", actor)


def _check_edit(latest: PolicyVersion, policy: AnyPolicy) -> None:
    if policy.kind != latest.kind:
        raise PolicyStoreError(
            f"policy {latest.policy_id} is a {latest.kind} policy and the file holds a {policy.kind} policy; "
            "a policy keeps its kind (`netra policies add` makes a new one)"
        )


async def edit_policy(session: AsyncSession, policy_id: str, policy: AnyPolicy, actor: str) -> PolicyVersion:
    """Add the next version of a policy; it is active at once when the version it replaces was active."""
    _check_text("the actor", actor)
    await _bump(session)
    try:
        latest = await _latest(session, policy_id)
        _check_edit(latest, policy)
    except PolicyStoreError:
        await session.rollback()
        raise
    was_active = latest.status == "active"
    row = _row(policy, policy_id, latest.version + 1, "active" if was_active else "proposed", actor)
    if latest.status != "retired":
        latest.status = "superseded"
    session.add(row)
    _record(session, row, "edited", actor)
    if was_active:
        _record(session, row, "activated", actor)
    await session.commit()
    return row


async def list_policies(session: AsyncSession, status: str | None = None) -> list[PolicyVersion]:
    """The newest version of every policy (optionally only those with this status), oldest policy first."""
    newest = (
        select(
            PolicyVersion.policy_id,
            func.max(PolicyVersion.version).label("version"),
            func.min(PolicyVersion.created_at).label("first"),
        )
        .group_by(PolicyVersion.policy_id)
        .subquery()
    )
    query = select(PolicyVersion).join(
        newest, (PolicyVersion.policy_id == newest.c.policy_id) & (PolicyVersion.version == newest.c.version)
    )
    if status is not None:
        query = query.where(PolicyVersion.status == status)
    return list((await session.scalars(query.order_by(newest.c.first, PolicyVersion.policy_id))).all())


async def policy_history(session: AsyncSession, policy_id: str) -> PolicyHistory:
    """Every version and every event of one policy."""
    versions = (
        await session.scalars(
            select(PolicyVersion).where(PolicyVersion.policy_id == policy_id).order_by(PolicyVersion.version)
        )
    ).all()
    if not versions:
        raise PolicyStoreError(f"no policy with id {policy_id!r} (`netra policies list` shows them)")
    events = (
        await session.scalars(
            select(PolicyEvent).where(PolicyEvent.policy_id == policy_id).order_by(PolicyEvent.id)
        )
    ).all()
    return PolicyHistory(list(versions), list(events))


def to_policy(row: PolicyVersion) -> AnyPolicy:
    """The policy a row holds, with the row's id, version, status and time."""
    fields = {"id": row.policy_id, "version": row.version, "status": row.status, "created_at": row.created_at}
    return parse_policy({**row.document, **fields})


async def active_policies(session: AsyncSession) -> list[AnyPolicy]:
    """Every active policy (one version each); a row this Netra cannot read is logged and left out."""
    rows = (await session.scalars(select(PolicyVersion).where(PolicyVersion.status == "active"))).all()
    policies: list[AnyPolicy] = []
    for row in sorted(rows, key=lambda r: (r.policy_id, r.version)):
        try:
            policies.append(to_policy(row))
        except ValidationError as exc:
            log.error("stored policy unreadable; left out", extra={"policy_id": row.policy_id, "error": str(exc)})
    return policies
