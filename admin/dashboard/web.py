"""Rendering pages: the Jinja2 environment (autoescaping every value), the ledger the pages read, and `page()`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse

from admin.dashboard.charts import chart_css
from admin.principal import principal_of
from admin.security import CSRF_COOKIE
from admin.state import get_state
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseLocked, ClickHouseStore, refuse_if_held
from core.settings import Settings

T = TypeVar("T")
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
log = logging.getLogger("netra.admin")


class LedgerUnavailable(Exception):
    """The pages cannot read the ledger (another process holds the embedded store)."""


LedgerOpener = Callable[[Settings], ClickHouseStore | None]


def open_ledger(settings: Settings) -> ClickHouseStore | None:
    """The ledger store, migrated; None while another process (a running gateway) holds the embedded one."""
    if not settings.ledger_enabled:
        return None
    try:
        refuse_if_held(settings)
    except ClickHouseLocked as exc:
        log.warning("analytics pages without the ledger: %s", exc)
        return None
    store = ClickHouseStore.open(settings)
    upgrade_clickhouse(store)
    return store


class Ledger:
    """The ledger store, opened on first use (an admin app nobody reads analytics from never opens it)."""

    def __init__(self, settings: Settings, opener: LedgerOpener) -> None:
        self._settings, self._opener = settings, opener
        self._store: ClickHouseStore | None = None
        self._lock = asyncio.Lock()

    async def store(self) -> ClickHouseStore | None:
        """The open store, or None when it cannot be opened now (tried again on the next call)."""
        async with self._lock:
            if self._store is None:
                self._store = await asyncio.to_thread(self._opener, self._settings)
            return self._store

    async def close(self) -> None:
        """Close the store if it was opened."""
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None


@dataclass(frozen=True, slots=True)
class Pages:
    """What the dashboard's pages share: templates, the charts' stylesheet, the ledger."""

    templates: Environment
    chart_css: str
    ledger: Ledger

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run an analytics function (`fn(run, *args)`) on the store's thread, or LedgerUnavailable."""
        store = await self.ledger.store()
        if store is None:
            raise LedgerUnavailable
        return await store.run(fn, store.query, *args)


def money(value: Decimal | str | None, places: int = 2) -> str:
    """Dollars for a page: $1,234.57; below a dollar, to the millionth ($0.000318), since calls cost fractions of
    a cent (a Decimal rounded half-even, never through a float)."""
    if value is None:
        return "—"
    amount = Decimal(value)
    if amount and abs(amount) < 1:
        places = max(places, 6)
    return f"${amount.quantize(Decimal(1).scaleb(-places)):,}"


def percent(value: Decimal | None) -> str:
    """A ratio as a percentage with one decimal, or a dash when there is nothing to divide."""
    return "—" if value is None else f"{(Decimal(value) * 100).quantize(Decimal('0.1'))}%"


def when(value: datetime | str | None) -> str:
    """A time as `2026-12-02 08:11 UTC`."""
    if value is None:
        return "—"
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return parsed.strftime("%Y-%m-%d %H:%M UTC")


def environment() -> Environment:
    """Templates from admin/templates, every `{{ value }}` HTML-escaped."""
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=money, percent=percent, when=when)
    return env


def open_pages(settings: Settings, opener: LedgerOpener = open_ledger) -> Pages:
    """The pages' shared parts (the ledger opens on first use); close with close_pages."""
    return Pages(environment(), chart_css(), Ledger(settings, opener))


async def close_pages(pages: Pages) -> None:
    """Close the ledger store."""
    await pages.ledger.close()


def pages_of(conn: HTTPConnection) -> Pages:
    """The pages' shared parts of this app."""
    pages = get_state(conn).pages
    assert pages is not None, "the lifespan builds the pages"
    return pages


def page(conn: HTTPConnection, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page with the signed-in user, the current path and the CSRF token its forms post back."""
    principal = conn.scope.get("netra.principal")
    html = pages_of(conn).templates.get_template(template).render(
        user=principal, path=conn.url.path, csrf_token=conn.cookies.get(CSRF_COOKIE, ""), **context)
    return HTMLResponse(html, status_code=status)


def signed_in(conn: HTTPConnection) -> str:
    """The signed-in user's email, for audit entries."""
    return principal_of(conn).email
