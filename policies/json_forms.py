"""Stored policy versions and events as JSON: the form `netra policies show --json` prints and the admin API returns."""

from __future__ import annotations

from typing import Any

from core.models import PolicyEvent, PolicyVersion


def version_dict(row: PolicyVersion) -> dict[str, Any]:
    """A version: its columns and the policy document as stored."""
    return {
        "id": row.policy_id, "version": row.version, "kind": row.kind, "status": row.status,
        "priority": row.priority, "name": row.name, "author": row.author,
        "created_at": row.created_at.isoformat(), "document": row.document,
    }


def event_dict(event: PolicyEvent) -> dict[str, Any]:
    """Who changed a policy's status, and when."""
    return {"version": event.version, "action": event.action, "actor": event.actor, "at": event.at.isoformat()}
