"""Sign-in: login, refresh, logout and /api/me."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from admin.body import read_object, string_field
from admin.cookies import REFRESH_COOKIE, clear_session_cookies, set_session_cookies
from admin.errors import login_locked, render, unauthenticated
from admin.principal import client_address, principal_of
from admin.session import FORM_TYPE, set_access_cookie
from admin.state import AdminState, get_state
from admin.tokens import issue_access
from core import refresh_tokens
from core.login_throttle import locked_for, note_attempt
from core.oidc_users import is_sso_user
from core.passwords import verify_password
from core.user_store import MAX_EMAIL_LENGTH, user_by_email
from core.users import User

BAD_CREDENTIALS = "Incorrect email or password."


def _signed_in(request: Request, state: AdminState, user: User, refresh: str) -> Response:
    access = issue_access(state.signing_key, user.id, user.role, state.clock(), state.access_ttl)
    response = JSONResponse({"access_token": access, "token_type": "bearer",
                             "expires_in": state.settings.admin_access_token_ttl})
    set_session_cookies(request, response, state, refresh)
    set_access_cookie(request, response, access, state.settings.admin_access_token_ttl)
    return response


async def login(request: Request) -> Response:
    """Email and password for an access token and a refresh cookie; throttled per account and per address."""
    state = get_state(request)
    body = await read_object(request)
    email = string_field(body, "email").strip().lower()[:MAX_EMAIL_LENGTH]
    password = string_field(body, "password")
    address, now = client_address(request), state.clock()
    async with state.sessions() as session:
        if (wait := await locked_for(session, email, address, now, state.throttle)) is not None:
            raise login_locked(wait)
        user = await user_by_email(session, email)
        # A single sign-on user has no password: it costs the decoy's time too, so timing does not tell it apart.
        stored = user.password_hash if user is not None and not is_sso_user(user) else state.unknown_user_hash
        matched = await asyncio.to_thread(verify_password, stored, password)
        accepted = matched and user is not None and not user.disabled
        await note_attempt(session, email, address, accepted, now, state.throttle)
        if not accepted or user is None:
            raise unauthenticated(BAD_CREDENTIALS, "invalid_credentials")
        refresh = await refresh_tokens.issue(session, user.id, now, state.refresh_ttl)
    return _signed_in(request, state, user, refresh)


async def _rotate(state: AdminState, token: str) -> tuple[User, str] | None:
    now = state.clock()
    async with state.sessions() as session:
        try:
            rotation = await refresh_tokens.rotate(session, token, now, state.refresh_ttl)
        except refresh_tokens.RefreshRefused:
            return None
        user = await session.get(User, rotation.user_id)
        if user is None or user.disabled:
            await refresh_tokens.revoke(session, rotation.token, now)
            return None
        return user, rotation.token


async def refresh(request: Request) -> Response:
    """A new access token and the next refresh token, for a refresh cookie not yet used (CSRF-checked)."""
    state = get_state(request)
    rotated = await _rotate(state, request.cookies[REFRESH_COOKIE])
    if rotated is None:
        response = render(unauthenticated("The session has ended; sign in again."))
        clear_session_cookies(response)
        return response
    return _signed_in(request, state, *rotated)


async def logout(request: Request) -> Response:
    """Revoke the refresh cookie's whole family and clear the cookies (CSRF-checked)."""
    state = get_state(request)
    async with state.sessions() as session:
        await refresh_tokens.revoke(session, request.cookies[REFRESH_COOKIE], state.clock())
    # A page's sign-out form goes back to the login page; an API client gets 204.
    form = request.headers.get("content-type", "").startswith(FORM_TYPE)
    response = RedirectResponse("/login", status_code=303) if form else Response(status_code=204)
    clear_session_cookies(response)
    return response


async def me(request: Request) -> Response:
    """The signed-in user."""
    principal = principal_of(request)
    return JSONResponse({"id": principal.user_id, "email": principal.email, "role": principal.role})
