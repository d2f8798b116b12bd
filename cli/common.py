"""What the commands share: settings, a database session, clean failure messages."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import create_engine, create_sessionmaker
from core.migrate import upgrade_relational
from core.settings import Settings

T = TypeVar("T")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class CommandError(Exception):
    """A failure the operator can act on; `netra` prints it as one line and exits with status 1."""


def fail(message: str, code: int = 1) -> int:
    """Print an error for the operator and return the exit status."""
    print(f"netra: {message}", file=sys.stderr)
    return code


def database_message(settings: Settings, exc: BaseException) -> str:
    """`cannot use the database URL (password hidden): the first line of the reason`."""
    shown = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    # SQLAlchemy appends the statement and a link on further lines; the first line says what went wrong.
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"cannot use the database {shown}: {text.splitlines()[0] if text else type(exc).__name__}"


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `3600s`, `2w` as a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"cannot read duration {text!r}; use a number and a unit, e.g. 30d, 12h, 90m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate the relational store if needed, then run `work` in one session."""

    async def go() -> T:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    try:
        upgrade_relational(settings)
        return asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(database_message(settings, exc)) from exc
