"""ClickHouse DDL migrations: numbered .sql files in migrations/clickhouse, applied once each, in order."""

from __future__ import annotations

import re
from pathlib import Path

from core.clickhouse import ClickHouseStore

# The migrations folder sits beside core/ in the source tree and in site-packages alike.
CLICKHOUSE_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "clickhouse"
_VERSION_TABLE = "netra_schema_migrations"
_STATEMENT_END = re.compile(r";\s*(?:\n|$)")


def migration_files(folder: Path = CLICKHOUSE_MIGRATIONS) -> list[Path]:
    """The migration files, in version order."""
    return sorted(folder.glob("[0-9]*.sql"))


def split_statements(sql: str) -> list[str]:
    """Statements of a file, split at semicolons that end a line; comment-only pieces are dropped."""
    pieces = (piece.strip() for piece in _STATEMENT_END.split(sql))
    return [p for p in pieces if p and not all(line.lstrip().startswith("--") for line in p.splitlines())]


def applied_versions(store: ClickHouseStore) -> set[str]:
    """Versions already recorded."""
    store.command(
        f"CREATE TABLE IF NOT EXISTS {_VERSION_TABLE} (version String, applied_at DateTime64(3, 'UTC') "
        "DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    return {row[0] for row in store.query(f"SELECT version FROM {_VERSION_TABLE} FINAL")}


def upgrade_clickhouse(store: ClickHouseStore, folder: Path = CLICKHOUSE_MIGRATIONS) -> list[str]:
    """Apply every migration not yet recorded (blocking); returns the versions applied now."""
    done = applied_versions(store)
    applied: list[str] = []
    for path in migration_files(folder):
        version = path.stem
        if version in done:
            continue
        for statement in split_statements(path.read_text(encoding="utf-8")):
            store.command(statement)
        store.client.insert(_VERSION_TABLE, [[version]], column_names=["version"])
        applied.append(version)
    return applied
