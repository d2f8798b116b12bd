"""Checks before a server starts, so a mistake is one line on stderr instead of a traceback from inside uvicorn."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from admin.oidc_config import OidcConfigError, oidc_config
from cli.common import database_message
from core.config import ConfigError, read_config
from core.db import create_engine
from core.migrate import alembic_config
from core.settings import Settings


def config_problem(settings: Settings) -> str | None:
    """What is wrong with netra.yaml (file, line, field and what to change), or None."""
    try:
        read_config(settings, os.environ)
    except ConfigError as exc:
        return str(exc)
    return None


def sso_problem(settings: Settings) -> str | None:
    """What is missing or malformed in the single sign-on settings (NETRA_OIDC_*), or None."""
    try:
        oidc_config(settings)
    except OidcConfigError as exc:
        return str(exc)
    return None


def database_problem(settings: Settings) -> str | None:
    """Why the relational database cannot be reached or opened, or None."""
    try:
        asyncio.run(_current_revisions(settings))
    except (SQLAlchemyError, OSError) as exc:
        return database_message(settings, exc)
    return None


def schema_problem(settings: Settings) -> str | None:
    """Why the relational schema cannot serve yet (absent, behind, unreachable), or None when it is current."""
    url = settings.resolved_database_url
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.exists():
        return f"no database yet at {sqlite_file}: run `netra migrate` first (or `netra run`, which migrates)"
    try:
        current = asyncio.run(_current_revisions(settings))
    except (SQLAlchemyError, OSError) as exc:
        return database_message(settings, exc)
    script = ScriptDirectory.from_config(alembic_config(settings))
    needed = set(script.get_heads())
    if current == needed:
        return None
    shown = make_url(url).render_as_string(hide_password=True)
    at, wants = ", ".join(sorted(current)), ", ".join(sorted(needed))
    if current - {r.revision for r in script.walk_revisions()}:
        return f"the database {shown} is at revision {at}, which this Netra does not know (it needs {wants}): " \
               "a newer Netra migrated it; run that version"
    state = "has no Netra tables" if not current else f"is at revision {at}"
    return f"the database {shown} {state}; this Netra needs {wants}: run `netra migrate` first"


async def _current_revisions(settings: Settings) -> set[str]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_heads)
    finally:
        await engine.dispose()


def _heads(conn: Connection) -> set[str]:
    return set(MigrationContext.configure(conn).get_current_heads())


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)
