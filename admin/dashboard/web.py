"""Rendering pages: the Jinja2 environment (autoescaping every value), the ledger the pages read, and `page()`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse

from admin.dashboard.charts import chart_css
from admin.dashboard.ledger import Ledger
from admin.ledger import LedgerAccess
from admin.security import CSRF_COOKIE
from admin.state import get_state

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True, slots=True)
class Pages:
    """What the dashboard's pages share: templates, the charts' stylesheet, the ledger."""

    templates: Environment
    chart_css: str
    ledger: Ledger


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


def open_pages(access: LedgerAccess) -> Pages:
    """The pages' shared parts (the ledger is opened per request that reads it, through the app's access)."""
    return Pages(environment(), chart_css(), Ledger(access))


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

