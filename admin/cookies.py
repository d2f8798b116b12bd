"""The session's cookies, set by every way of signing in: the refresh token and the CSRF token."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from admin.security import CSRF_COOKIE
from admin.session import clear_access_cookie
from admin.state import AdminState

REFRESH_COOKIE = "netra_refresh"
REFRESH_PATH = "/api/auth"


def set_session_cookies(request: Request, response: Response, state: AdminState, refresh: str) -> None:
    """The refresh token (httpOnly, sent only to /api/auth) and a fresh CSRF token the page's script can read."""
    secure = request.url.scheme == "https"
    ttl = state.settings.admin_refresh_token_ttl
    response.set_cookie(REFRESH_COOKIE, refresh, max_age=ttl, path=REFRESH_PATH, secure=secure, httponly=True,
                        samesite="strict")
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(32), max_age=ttl, path="/", secure=secure,
                        httponly=False, samesite="strict")


def clear_session_cookies(response: Response) -> None:
    """Tell the browser to drop them (and the pages' access cookie)."""
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH, httponly=True, samesite="strict")
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")
    clear_access_cookie(response)  # the dashboard pages' copy of the access token
