"""`netra gateway` checks the relational schema before serving: each state it can find is one clear line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.script import ScriptDirectory

from cli.preflight import schema_problem
from core.migrate import alembic_config, upgrade_relational
from core.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]


def _set_revision(db: Path, revision: str | None) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM alembic_version")
        if revision is not None:
            conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (revision,))
    conn.close()


def test_each_schema_state_reads_as_one_line(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    db = tmp_path / "data" / "netra.db"
    url = f"sqlite+aiosqlite:///{db}"
    head = ", ".join(ScriptDirectory.from_config(alembic_config(settings)).get_heads())
    assert schema_problem(settings) == (
        f"no database yet at {db}: run `netra migrate` first (or `netra run`, which migrates)"
    )
    assert not db.exists()
    upgrade_relational(settings)
    assert schema_problem(settings) is None
    _set_revision(db, None)
    assert schema_problem(settings) == (
        f"the database {url} has no Netra tables; this Netra needs {head}: run `netra migrate` first"
    )
    _set_revision(db, "9999")
    assert schema_problem(settings) == (
        f"the database {url} is at revision 9999, which this Netra does not know (it needs {head}): "
        "a newer Netra migrated it; run that version"
    )
