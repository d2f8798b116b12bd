"""How the permission guard refuses a browser page: to the login page when signed out, an HTML page otherwise."""

from __future__ import annotations

from starlette.responses import HTMLResponse, Response
from starlette.types import Scope

from admin.errors import render
from admin.session import is_page, to_login
from admin.state import state_of
from core.errors import NetraError


def refusal(scope: Scope, error: NetraError) -> Response:
    """The response for a refused request: JSON for the API, a redirect or an HTML page for a browser page."""
    if not is_page(scope):
        return render(error)
    if error.status_code == 401:
        return to_login(scope)
    pages = state_of(scope).pages
    if pages is None:
        return render(error)
    html = pages.templates.get_template("refused.html").render(user=None, message=error.message, path="")
    return HTMLResponse(html, status_code=error.status_code)
