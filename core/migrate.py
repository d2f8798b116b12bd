"""Apply the relational migrations (Alembic) programmatically."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from core.settings import Settings

# The migrations package sits beside core/ in the source tree and in site-packages alike.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    """An Alembic config pointing at the project's migrations and the configured database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    return config


def upgrade_relational(settings: Settings) -> None:
    """Bring the relational schema to the newest revision (blocking; call from a thread inside a loop)."""
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), "head")


async def upgrade_relational_async(settings: Settings) -> None:
    """The same, from async code."""
    await asyncio.to_thread(upgrade_relational, settings)
