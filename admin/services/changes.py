"""Who makes a change, and the audit entries written in the same commit as a change made by a core function.

The core functions (tenants, keys, policies, invoices) commit for themselves, as the CLI needs. `audited` adds the
audit entries from a `before_commit` hook, so an entry and the change it describes are one transaction: both are
stored or neither is. A core function that changes nothing and does not commit leaves no entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from core import audit


@dataclass(frozen=True, slots=True)
class Actor:
    """The signed-in user making a change, and the address the request came from."""

    email: str
    address: str | None = None

    @property
    def policy_author(self) -> str:
        """How the policy store names a human author."""
        return f"human:{self.email}"


@dataclass(frozen=True, slots=True)
class Change:
    """One audit entry: what was done to which target, the state before and after."""

    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


Describe = Callable[[Session], Iterable[Change]]


def _entry_writer(session: AsyncSession, actor: Actor, describe: Describe) -> Callable[[Session], None]:
    def add_entries(committing: Session) -> None:
        for change in describe(committing):
            audit.record(session, actor.email, change.action, (change.target_type, change.target_id),
                         before=change.before, after=change.after, address=actor.address)

    return add_entries


@contextmanager
def audited(session: AsyncSession, actor: Actor, describe: Describe) -> Iterator[None]:
    """While open, each commit of `session` also adds the entries `describe` gives (called as it commits)."""
    sync = session.sync_session
    add_entries = _entry_writer(session, actor, describe)
    event.listen(sync, "before_commit", add_entries)
    try:
        yield
    finally:
        event.remove(sync, "before_commit", add_entries)


class AuditedSessions:
    """A session maker whose sessions add `describe`'s entries to each commit (for core functions that open
    their own sessions, such as invoice issuing)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], actor: Actor, describe: Describe) -> None:
        self.sessions, self.actor, self.describe = sessions, actor, describe

    def __call__(self) -> AsyncSession:
        """A new session with the entry writer attached for its whole (short) life."""
        session = self.sessions()
        event.listen(session.sync_session, "before_commit", _entry_writer(session, self.actor, self.describe))
        return session


def added(committing: Session, kind: type[Any]) -> list[Any]:
    """The objects of a type the committing session is about to insert."""
    return [obj for obj in committing.new if isinstance(obj, kind)]
