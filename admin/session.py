"""Page sessions: the access token also rides in an httpOnly SameSite=Strict cookie, and form posts carry CSRF tokens.

The JSON API keeps its bearer header; a browser page cannot add one to a navigation, so login and refresh also set
the access token as a cookie the page's scripts cannot read. A write authenticated by that cookie must prove it
comes from our page: the double-submit CSRF token in the x-csrf-token header (scripts) or in the `csrf_token` field
of a urlencoded form (plain HTML forms), and the Origin check.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, quote

from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Message, Receive, Scope

from admin.errors import Forbidden
from admin.security import CSRF_COOKIE, CSRF_HEADER, check_origin
from core.errors import RequestTooLarge

ACCESS_COOKIE = "netra_access"
VIA_COOKIE = "netra.via_cookie"
FORM_FIELD = "csrf_token"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024


def set_access_cookie(request: Request, response: Response, token: str, ttl: int) -> None:
    """The access token as a cookie for page requests (httpOnly: scripts never see it)."""
    response.set_cookie(ACCESS_COOKIE, token, max_age=ttl, path="/", secure=request.url.scheme == "https",
                        httponly=True, samesite="strict")


def clear_access_cookie(response: Response) -> None:
    """Forget the page session's access token."""
    response.delete_cookie(ACCESS_COOKIE, path="/", httponly=True, samesite="strict")


def cookie_token(conn: HTTPConnection) -> str | None:
    """The access token from the cookie (noting in the scope that the request authenticated by cookie)."""
    token = conn.cookies.get(ACCESS_COOKIE)
    if token:
        conn.scope[VIA_COOKIE] = True
    return token or None


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            raise RequestTooLarge(f"The body exceeds {MAX_FORM_BYTES} bytes.")
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes) -> Receive:
    """A receive that hands the already-read body to the app, once."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _same(cookie: str, given: str) -> bool:
    return bool(cookie) and hmac.compare_digest(cookie.encode(), given.encode())


async def checked_write(scope: Scope, receive: Receive) -> Receive:
    """Refuse a cookie-authenticated write without the CSRF token (header or form field); the body is replayed."""
    request = Request(scope)
    check_origin(request)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if _same(cookie, request.headers.get(CSRF_HEADER, "")):
        return receive
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM_TYPE:
        body = await _read_body(receive)
        fields = parse_qs(body.decode("latin-1"), max_num_fields=100)
        if _same(cookie, (fields.get(FORM_FIELD) or [""])[0]):
            return _replay(body)
    raise Forbidden(f"Missing or wrong {CSRF_HEADER} header or {FORM_FIELD} field.", code="csrf_failed")


def is_page(scope: Scope) -> bool:
    """A browser navigating to a page (not the JSON API, not a static file)."""
    path = str(scope.get("path", ""))
    accept = Request(scope).headers.get("accept", "")
    return scope.get("method") in ("GET", "HEAD") and not path.startswith(("/api/", "/static/")) and (
        "text/html" in accept)


def to_login(scope: Scope) -> Response:
    """Send a browser that is not signed in to the login page, to come back here after."""
    target = str(scope.get("path", "/"))
    if scope.get("query_string"):
        target += "?" + bytes(scope["query_string"]).decode("latin-1")
    return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
