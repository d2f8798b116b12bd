"""Signing in to the admin app: login, /api/me, and when an access token stops working."""

from __future__ import annotations

from collections.abc import AsyncIterator

import jwt
import pytest

from core.settings import Settings
from tests.unit.admin_harness import PASSWORD, Admin, running_admin
from tests.unit.conftest import Database
from tests.unit.helpers import assert_envelope

FORGED = {"sub": "usr_x", "role": "admin", "iat": 1, "exp": 2**40, "jti": "j"}


@pytest.fixture
async def admin(settings: Settings, database: Database) -> AsyncIterator[Admin]:
    async with running_admin(settings, database.sessions) as running:
        yield running


async def test_right_password_gives_a_bearer_token_for_the_user(admin: Admin) -> None:
    await admin.add_user("Ana@Example.com", "finance")
    response = await admin.login("ana@example.COM ")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "role", "iat", "exp", "jti"} and claims["exp"] - claims["iat"] == 900
    me = await (await admin.client()).get("/api/me", headers={"authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json() == {"id": claims["sub"], "email": "ana@example.com", "role": "finance"}


async def test_refresh_and_csrf_cookies_are_set_safely(admin: Admin) -> None:
    await admin.add_user("ana@example.com", "viewer")
    cookies = (await admin.login("ana@example.com")).headers.get_list("set-cookie")
    refresh = next(c for c in cookies if c.startswith("netra_refresh="))
    csrf = next(c for c in cookies if c.startswith("netra_csrf="))
    assert "HttpOnly" in refresh and "SameSite=strict" in refresh and "Path=/api/auth" in refresh
    assert "HttpOnly" not in csrf and "SameSite=strict" in csrf
    assert "Secure" not in refresh  # plain http here; over https the cookies are Secure (next test)


async def test_cookies_are_secure_over_https(admin: Admin) -> None:
    await admin.add_user("ana@example.com", "viewer")
    http = await admin.client(scheme="https")
    response = await http.post("/api/auth/login", json={"email": "ana@example.com", "password": PASSWORD})
    assert all("Secure" in c for c in response.headers.get_list("set-cookie"))


@pytest.mark.parametrize("email, password", [
    ("ana@example.com", "wrong password here"),
    ("nobody@example.com", PASSWORD),
    ("not an email", PASSWORD),
])
async def test_wrong_credentials_get_one_answer(admin: Admin, email: str, password: str) -> None:
    await admin.add_user("ana@example.com", "admin")
    response = await admin.login(email, password)
    assert response.status_code == 401 and "set-cookie" not in response.headers
    error = assert_envelope(response.json(), type="invalid_request_error", code="invalid_credentials")
    assert error["message"] == "Incorrect email or password."


async def test_disabled_user_cannot_sign_in_and_its_tokens_stop(admin: Admin) -> None:
    await admin.add_user("boss@example.com", "admin")
    victim = await admin.add_user("ana@example.com", "admin")
    boss, ana = await admin.token("boss@example.com"), await admin.token("ana@example.com")
    http = await admin.client()
    assert (await http.get("/api/me", headers=ana)).status_code == 200
    assert (await http.post(f"/api/users/{victim}/disable", headers=boss)).status_code == 200
    refused = await http.get("/api/me", headers=ana)
    assert refused.status_code == 401
    assert_envelope(refused.json(), type="invalid_request_error", code="invalid_token")
    assert (await admin.login("ana@example.com")).status_code == 401


async def test_access_token_expires(admin: Admin) -> None:
    await admin.add_user("ana@example.com", "viewer")
    headers = await admin.token("ana@example.com")
    http = await admin.client()
    admin.clock.advance(899)
    assert (await http.get("/api/me", headers=headers)).status_code == 200
    admin.clock.advance(2)
    assert (await http.get("/api/me", headers=headers)).status_code == 401


@pytest.mark.parametrize("header", [
    "Bearer not-a-jwt",
    "Basic YW5hOnB3",
    "Bearer ",
    "Bearer " + jwt.encode(FORGED, "a guessed key, long enough for HS256 at least"),
    "Bearer " + jwt.encode(FORGED, None, algorithm="none"),
])
async def test_forged_or_malformed_tokens_are_refused(admin: Admin, header: str) -> None:
    response = await (await admin.client()).get("/api/me", headers={"authorization": header})
    assert response.status_code == 401
    assert_envelope(response.json(), type="invalid_request_error", code="invalid_token")


@pytest.mark.parametrize("body, code, param", [
    (b"{not json", "invalid_json", None),
    (b"[1, 2]", "invalid_json", None),
    (b'{"email": "a@b.c"}', "missing_required_parameter", "password"),
    (b'{"email": 7, "password": "x"}', "invalid_type", "email"),
])
async def test_bad_login_bodies_get_400_envelopes(admin: Admin, body: bytes, code: str, param: str | None) -> None:
    response = await (await admin.client()).post("/api/auth/login", content=body)
    assert response.status_code == 400
    assert_envelope(response.json(), type="invalid_request_error", code=code, param=param)


async def test_oversized_login_body_is_refused(admin: Admin) -> None:
    response = await (await admin.client()).post("/api/auth/login", content=b'{"email": "' + b"a" * 70_000 + b'"}')
    assert response.status_code == 413
    assert_envelope(response.json(), type="invalid_request_error", code="request_too_large")
