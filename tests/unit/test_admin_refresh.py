"""Refresh cookies: rotation on every use, reuse detection, logout, and the CSRF checks guarding both."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.settings import Settings
from tests.unit.admin_harness import ORIGIN, Admin, running_admin
from tests.unit.conftest import Database
from tests.unit.helpers import assert_envelope


@pytest.fixture
async def admin(settings: Settings, database: Database) -> AsyncIterator[Admin]:
    async with running_admin(settings, database.sessions) as running:
        await running.add_user("ana@example.com", "viewer")
        assert (await running.login("ana@example.com")).status_code == 200
        yield running


def csrf(http: httpx.AsyncClient) -> dict[str, str]:
    """The double-submit header: the CSRF cookie's value."""
    return {"x-csrf-token": http.cookies["netra_csrf"]}


async def refresh(http: httpx.AsyncClient) -> httpx.Response:
    """POST /api/auth/refresh with the jar's cookies."""
    return await http.post("/api/auth/refresh", headers=csrf(http))


async def replay(admin: Admin, refresh_token: str) -> httpx.Response:
    """POST /api/auth/refresh from another browser holding a copy of an (old) refresh token."""
    thief = await admin.new_client("192.0.2.66")
    thief.cookies.set("netra_refresh", refresh_token, path="/api/auth")
    thief.cookies.set("netra_csrf", "thief-csrf")
    return await thief.post("/api/auth/refresh", headers={"x-csrf-token": "thief-csrf"})


async def test_refresh_rotates_the_cookie_and_returns_a_working_token(admin: Admin) -> None:
    http = await admin.client()
    first = http.cookies["netra_refresh"]
    response = await refresh(http)
    assert response.status_code == 200, response.text
    assert http.cookies["netra_refresh"] != first
    me = await http.get("/api/me", headers={"authorization": f"Bearer {response.json()['access_token']}"})
    assert me.json()["email"] == "ana@example.com"
    assert (await refresh(http)).status_code == 200  # the new cookie works in turn


async def test_reusing_a_rotated_token_revokes_its_whole_family(admin: Admin) -> None:
    http = await admin.client()
    stolen = http.cookies["netra_refresh"]
    assert (await refresh(http)).status_code == 200  # the owner rotates
    replayed = await replay(admin, stolen)  # the thief replays the old one
    assert replayed.status_code == 401
    assert_envelope(replayed.json(), type="invalid_request_error", code="invalid_token")
    owner = await refresh(http)  # ...and the owner's current token died with its family
    assert owner.status_code == 401


async def test_other_sessions_survive_a_reuse(admin: Admin) -> None:
    http = await admin.client()
    other = await admin.client("198.51.100.9")
    assert (await other.post("/api/auth/login", json={"email": "ana@example.com",
                                                      "password": "correct horse battery staple"})).status_code == 200
    stolen = http.cookies["netra_refresh"]
    await refresh(http)
    assert (await replay(admin, stolen)).status_code == 401
    assert (await refresh(other)).status_code == 200


async def test_logout_revokes_the_refresh_token_and_clears_cookies(admin: Admin) -> None:
    http = await admin.client()
    token, headers = http.cookies["netra_refresh"], csrf(http)
    response = await http.post("/api/auth/logout", headers=headers)
    assert response.status_code == 204
    cleared = response.headers.get_list("set-cookie")
    assert any(c.startswith('netra_refresh=""') or c.startswith("netra_refresh=;") for c in cleared), cleared
    assert (await replay(admin, token)).status_code == 401


async def test_expired_refresh_token_is_refused(admin: Admin) -> None:
    admin.clock.advance(7 * 24 * 3600 + 1)
    assert (await refresh(await admin.client())).status_code == 401


@pytest.mark.parametrize("path", ["/api/auth/refresh", "/api/auth/logout"])
@pytest.mark.parametrize("headers", [
    {},
    {"x-csrf-token": "not-the-cookie"},
    {"origin": "https://evil.example"},
])
async def test_cookie_writes_without_csrf_proof_are_refused(admin: Admin, path: str, headers: dict[str, str]) -> None:
    http = await admin.client()
    if "origin" in headers:
        headers = {**headers, **csrf(http)}  # even with the right token, a foreign origin is refused
    response = await http.post(path, headers=headers)
    assert response.status_code == 403
    assert_envelope(response.json(), type="permission_error", code="csrf_failed")
    assert (await refresh(http)).status_code == 200  # nothing was rotated or revoked


async def test_same_origin_browser_request_passes(admin: Admin) -> None:
    http = await admin.client()
    assert (await http.post("/api/auth/refresh", headers={**csrf(http), "origin": ORIGIN})).status_code == 200


async def test_refresh_without_cookie_is_401(admin: Admin) -> None:
    fresh = await admin.client("192.0.2.1")
    response = await fresh.post("/api/auth/refresh", headers={"x-csrf-token": "x"})
    assert response.status_code == 401
    assert_envelope(response.json(), type="invalid_request_error", code="missing_token")


@pytest.mark.parametrize("origin", ["null", "http://admin.test.evil.example", "http://admin.test:8443",
                                    "http://admin.test/path"])
async def test_lookalike_origins_are_refused(admin: Admin, origin: str) -> None:
    http = await admin.client()
    response = await http.post("/api/auth/refresh", headers={**csrf(http), "origin": origin})
    assert response.status_code == 403 and response.json()["error"]["code"] == "csrf_failed"


async def test_https_origin_behind_a_tls_proxy_passes(admin: Admin) -> None:
    http = await admin.client()
    assert (await http.post("/api/auth/refresh", headers={**csrf(http), "origin": "https://admin.test"})).is_success
