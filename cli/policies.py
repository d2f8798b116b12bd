"""`netra policies …`: add, activate, retire, edit, list and show policies; they work while Netra runs."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from cli.common import CommandError, with_session
from core.settings import Settings
from policies.json_forms import event_dict, version_dict
from policies.loader import PolicyFileError, load_policies
from policies.models import AnyPolicy
from policies.store import (
    CHANGES_CHANNEL,
    PolicyHistory,
    PolicyStoreError,
    activate_policy,
    add_policies,
    edit_policy,
    list_policies,
    policies_version,
    policy_history,
    retire_policy,
)

T = TypeVar("T")
LIST_COLUMNS = ("id", "version", "kind", "status", "priority", "name", "author", "created_at")


def actor(args: argparse.Namespace) -> str:
    """Who makes the change: `--by`, else `human:<OS user>`."""
    given: str | None = getattr(args, "by", None)
    if given is not None:
        if not given.startswith(("human:", "agent:")) or len(given.split(":", 1)[1].strip()) == 0:
            raise CommandError(f"--by {given!r}: use human:<name> or agent:<run id>")
        return given
    try:
        return f"human:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in a bare container: the uid still says who
        return f"human:uid{os.getuid()}"


def _read_file(path: str) -> list[AnyPolicy]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        return load_policies(text, path)
    except PolicyFileError as exc:
        raise CommandError(str(exc)) from exc


def _run(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    try:
        return with_session(settings, work)
    except PolicyStoreError as exc:
        raise CommandError(str(exc)) from exc


def _change(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Make a change, then tell running gateways (they also notice by polling, so a failed notice only warns)."""

    async def then_count(session: AsyncSession) -> tuple[T, int]:
        return await work(session), await policies_version(session)

    result, version = _run(settings, then_count)
    if settings.redis_url:
        announce(settings.redis_url, version)
    return result


def announce(url: str, version: int) -> None:
    """Publish a change notice for running gateways; a failure is a warning (they also poll the database)."""
    try:
        client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.publish(CHANGES_CHANNEL, str(version))
        finally:
            client.close()
    except (RedisError, OSError) as exc:
        print(
            f"netra: warning: could not announce the change on Redis ({type(exc).__name__}); "
            "gateways pick it up from the database within seconds",
            file=sys.stderr,
        )


def add(args: argparse.Namespace) -> int:
    """Store every policy in a file as proposed; print one id per line."""
    policies, by = _read_file(args.file), actor(args)
    ids = _change(Settings(), lambda s: add_policies(s, policies, by))
    print("\n".join(ids))
    return 0


def activate(args: argparse.Namespace) -> int:
    """Activate a policy's newest version."""
    by = actor(args)
    row = _change(Settings(), lambda s: activate_policy(s, args.id, by))
    print(f"policy {row.policy_id} v{row.version} ({row.name}) is active")
    return 0


def retire(args: argparse.Namespace) -> int:
    """Retire a policy."""
    by = actor(args)
    row = _change(Settings(), lambda s: retire_policy(s, args.id, by))
    print(f"policy {row.policy_id} v{row.version} ({row.name}) is retired")
    return 0


def edit(args: argparse.Namespace) -> int:
    """Store a file's one policy as the next version of a policy."""
    policies, by = _read_file(args.file), actor(args)
    if len(policies) != 1:
        raise CommandError(f"{args.file}: holds {len(policies)} policies; an edit takes exactly one")
    row = _change(Settings(), lambda s: edit_policy(s, args.id, policies[0], by))
    print(f"policy {row.policy_id} v{row.version} ({row.name}) is {row.status}")
    return 0


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def listing(args: argparse.Namespace) -> int:
    """List policies (their newest versions)."""
    rows = [version_dict(r) for r in _run(Settings(), lambda s: list_policies(s, args.status))]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, LIST_COLUMNS))
    return 0


def _given(value: Any) -> Any:
    """A document without its unset (null) fields, as one would write it."""
    if isinstance(value, dict):
        return {k: _given(v) for k, v in value.items() if v is not None and _given(v) != {}}
    return value


def _history_text(history: PolicyHistory) -> str:
    parts = []
    for row in history.versions:
        parts.append(f"# version {row.version}: {row.status}, by {row.author} at {row.created_at.isoformat()}")
        # YAML a policy file accepts: copy a version into a file to `netra policies edit` from it.
        parts.append(yaml.safe_dump(_given(row.document), sort_keys=False, allow_unicode=True).rstrip())
    parts.append(_table([event_dict(e) for e in history.events], ("version", "action", "actor", "at")))
    return "\n".join(parts)


def show(args: argparse.Namespace) -> int:
    """Every version of a policy and who changed it when."""
    history = _run(Settings(), lambda s: policy_history(s, args.id))
    if args.json:
        versions = [version_dict(r) for r in history.versions]
        events = [event_dict(e) for e in history.events]
        print(json.dumps({"id": args.id, "versions": versions, "events": events}, indent=2))
    else:
        print(f"policy {args.id}: {history.versions[-1].name}")
        print(_history_text(history))
    return 0
