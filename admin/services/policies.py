"""Policies through the same store and rules as `netra policies`: each change audited and announced to gateways.

A change bumps the store's counter, which every gateway polls (NETRA_POLICY_POLL_INTERVAL, 1 s by default); with
Redis configured, the new counter is also published on the changes channel, as the CLI does, for an instant swap.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from admin.errors import Conflict
from admin.services.changes import Actor, Change, added, audited
from admin.services.policy_views import applies_to, diff, parse_document
from core.errors import InvalidParameter, NotFound
from core.models import PolicyVersion
from policies import store
from policies.json_forms import version_dict
from policies.store import CHANGES_CHANNEL, PolicyHistory, PolicyStoreError

log = logging.getLogger("netra.admin.policies")
Sessions = async_sessionmaker[AsyncSession]
T = TypeVar("T")
KINDS = ("cache", "route", "batch")
STATUSES = store.STATUSES


async def announce(redis: Redis | None, version: int) -> None:
    """Publish the change counter for gateways listening on Redis; a failure only delays them until their poll."""
    if redis is None:
        return
    try:
        await redis.publish(CHANGES_CHANNEL, str(version))
    except (RedisError, OSError) as exc:
        log.warning("policy change not announced on Redis; gateways poll for it", extra={"error": type(exc).__name__})


async def list_policies(
    sessions: Sessions, *, kind: str | None = None, status: str | None = None, tenant: str | None = None
) -> list[PolicyVersion]:
    """The newest version of every policy, filtered by kind, status and the tenant it applies to."""
    async with sessions() as session:
        rows = await store.list_policies(session, status)
    return [r for r in rows if (kind is None or r.kind == kind) and (tenant is None or applies_to(r, tenant))]


async def history(sessions: Sessions, policy_id: str) -> PolicyHistory:
    """Every version and event of a policy; 404 for an unknown id."""
    async with sessions() as session:
        try:
            return await store.policy_history(session, policy_id)
        except PolicyStoreError as exc:
            raise NotFound("No such policy.", code="policy_not_found", param="policy_id") from exc


def _version(found: PolicyHistory, number: int, param: str) -> PolicyVersion:
    for row in found.versions:
        if row.version == number:
            return row
    raise NotFound(f"The policy has no version {number}.", code="version_not_found", param=param)


async def version_diff(sessions: Sessions, policy_id: str, older: int | None, newer: int | None) -> dict[str, Any]:
    """The diff from version `older` (default: the one before `newer`) to `newer` (default: the newest)."""
    found = await history(sessions, policy_id)
    to = _version(found, newer if newer is not None else found.versions[-1].version, "to")
    start = older if older is not None else max(to.version - 1, 1)
    return diff(_version(found, start, "from"), to)


async def _change(sessions: Sessions, redis: Redis | None, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Make a change in one session, then announce the counter it left."""
    async with sessions() as session:
        try:
            result = await work(session)
        except PolicyStoreError as exc:  # what the checks before it leave: a name or author too long
            raise InvalidParameter(str(exc), code="invalid_value") from exc
        version = await store.policies_version(session)
    await announce(redis, version)
    return result


def _added(action: str, before: dict[str, Any] | None) -> Callable[[Session], list[Change]]:
    def describe(committing: Session) -> list[Change]:
        rows = added(committing, PolicyVersion)
        return [Change(action, "policy", r.policy_id, before, version_dict(r)) for r in rows]

    return describe


async def create(sessions: Sessions, redis: Redis | None, actor: Actor, document: dict[str, Any]) -> PolicyVersion:
    """Store a policy document as version 1, proposed; returns the stored version with its new id."""
    policy = parse_document(document)

    async def work(session: AsyncSession) -> PolicyVersion:
        with audited(session, actor, _added("policy.create", None)):
            (policy_id,) = await store.add_policies(session, [policy], actor.policy_author)
        return (await store.policy_history(session, policy_id)).versions[-1]

    return await _change(sessions, redis, work)


async def _latest(sessions: Sessions, policy_id: str) -> PolicyVersion:
    """The newest version, read in a session of its own: the change's session then starts with the store's
    counter update, its write lock taken first (SQLite cannot turn a read transaction into a write after
    another writer has committed)."""
    return (await history(sessions, policy_id)).versions[-1]


async def edit(
    sessions: Sessions, redis: Redis | None, actor: Actor, policy_id: str, document: dict[str, Any]
) -> PolicyVersion:
    """Store a document as the next version (active at once when the version it replaces was active)."""
    policy = parse_document(document)
    latest = await _latest(sessions, policy_id)
    if latest.kind != policy.kind:
        raise InvalidParameter(f"The policy is a {latest.kind} policy; a policy keeps its kind.",
                               code="invalid_value", param="kind")

    async def work(session: AsyncSession) -> PolicyVersion:
        with audited(session, actor, _added("policy.edit", version_dict(latest))):
            return await store.edit_policy(session, policy_id, policy, actor.policy_author)

    return await _change(sessions, redis, work)


def _status_changed(action: str, latest: PolicyVersion) -> Callable[[Session], list[Change]]:
    before = version_dict(latest)

    def describe(committing: Session) -> list[Change]:
        # The version the store changed, as the committing session holds it.
        after = committing.get(PolicyVersion, (latest.policy_id, latest.version))
        return [Change(action, "policy", latest.policy_id, before, version_dict(after) if after else None)]

    return describe


async def _set_status(
    sessions: Sessions, redis: Redis | None, actor: Actor, policy_id: str, status: str
) -> PolicyVersion:
    latest = await _latest(sessions, policy_id)
    if latest.status == "retired" and status == "active":
        raise Conflict("The policy is retired; edit it to propose a new version.", code="policy_retired",
                       param="policy_id")
    setter = store.activate_policy if status == "active" else store.retire_policy
    action = "policy.activate" if status == "active" else "policy.retire"

    async def work(session: AsyncSession) -> PolicyVersion:
        with audited(session, actor, _status_changed(action, latest)):
            return await setter(session, policy_id, actor.policy_author)

    return await _change(sessions, redis, work)


async def activate(sessions: Sessions, redis: Redis | None, actor: Actor, policy_id: str) -> PolicyVersion:
    """Make a proposed policy active: every gateway applies it within its poll interval."""
    return await _set_status(sessions, redis, actor, policy_id, "active")


async def retire(sessions: Sessions, redis: Redis | None, actor: Actor, policy_id: str) -> PolicyVersion:
    """Retire a proposed or active policy."""
    return await _set_status(sessions, redis, actor, policy_id, "retired")
