"""Deny by default: every route of the admin app walked anonymously and with each role, and the security
headers on every response."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route

from admin import api
from admin.permissions import PERMISSIONS, PUBLIC, REFRESH_COOKIE_RULE
from admin.routes import routes
from admin.security import CSP
from core.settings import Settings
from core.users import ROLES, role_rank
from tests.unit.admin_harness import Admin, running_admin
from tests.unit.conftest import Database
from tests.unit.helpers import assert_envelope

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def calls(table: list[BaseRoute]) -> Iterator[tuple[str, str, str]]:
    """(method, table path, concrete URL) for every route and method the app serves."""
    for route in table:
        if isinstance(route, Mount):
            yield "GET", route.path, f"{route.path}/login.js"
        elif isinstance(route, Route):
            url = route.path.replace("{user_id}", "usr_0000000000000000").replace("{name}", "no-such-provider")
            url = url.replace("{host}", "no-such-host.example")
            url = re.sub(r"\{(\w+)\}", r"\1_0000000000000000", url)
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path, url


@pytest.fixture
async def admin(settings: Settings, database: Database) -> AsyncIterator[Admin]:
    async with running_admin(settings, database.sessions) as running:
        yield running


@pytest.fixture
async def tokens(admin: Admin) -> dict[str, dict[str, str]]:
    for role in ROLES:
        await admin.add_user(f"{role}@example.com", role)
    return {role: await admin.token(f"{role}@example.com") for role in ROLES}


def test_table_and_routes_agree() -> None:
    served = {(method, path) for method, path, _ in calls(routes())}
    assert served == set(PERMISSIONS)
    assert set(PERMISSIONS.values()) <= {PUBLIC, REFRESH_COOKIE_RULE, *ROLES}


def check_headers(response: httpx.Response, tls: bool = False) -> None:
    """The security headers every response must carry."""
    assert response.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert ("strict-transport-security" in response.headers) is tls


async def test_anonymous_callers_are_refused_everywhere_but_public_routes(admin: Admin) -> None:
    http = await admin.client()
    for method, path, url in calls(admin.app.routes):
        response = await http.request(method, url)
        check_headers(response)
        if PERMISSIONS[method, path] == PUBLIC:
            assert response.status_code != 401, (method, url)
        else:
            assert response.status_code == 401, (method, url, response.status_code)
            assert_envelope(response.json(), type="invalid_request_error", code="missing_token")


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_is_refused_where_the_table_says(
    admin: Admin, tokens: dict[str, dict[str, str]], role: str
) -> None:
    http = await admin.client()
    for method, path, url in calls(admin.app.routes):
        rule = PERMISSIONS[method, path]
        # An empty JSON object: enough to pass the guard and reach the handler, never enough to change anything.
        response = await http.request(method, url, headers=tokens[role], json={} if method in WRITES else None)
        check_headers(response)
        if rule in ROLES and role_rank(role) < role_rank(rule):
            assert response.status_code == 403, (role, method, url, response.status_code)
            assert_envelope(response.json(), type="permission_error", code="insufficient_role")
        elif rule in ROLES:
            assert response.status_code not in (401, 403), (role, method, url, response.status_code)


async def test_viewer_and_finance_cannot_write_users(admin: Admin, tokens: dict[str, dict[str, str]]) -> None:
    http = await admin.client()
    body = {"email": "new@example.com", "password": "a long enough password", "role": "admin"}
    for role in ("viewer", "finance"):
        assert (await http.post("/api/users", json=body, headers=tokens[role])).status_code == 403
    listed = (await http.get("/api/users", headers=tokens["admin"])).json()["data"]
    assert "new@example.com" not in {u["email"] for u in listed}


async def test_a_route_missing_from_the_table_is_refused(settings: Settings, database: Database) -> None:
    table = {k: v for k, v in PERMISSIONS.items() if k != ("GET", "/api/me")}
    async with running_admin(settings, database.sessions, permissions=table) as admin:
        await admin.add_user("root@example.com", "admin")
        headers = await admin.token("root@example.com")
        http = await admin.client()
        assert (await (await admin.new_client()).get("/api/me")).status_code == 401  # no session cookie either
        refused = await http.get("/api/me", headers=headers)
        assert refused.status_code == 403
        assert_envelope(refused.json(), type="permission_error", code="route_not_permitted")


@pytest.mark.parametrize("method, url, status", [
    ("GET", "/nowhere", 404),
    ("GET", "/api/users/usr_x", 404),
    ("DELETE", "/api/auth/login", 405),
    ("GET", "/static/missing.js", 404),
])
async def test_routing_errors_are_enveloped_and_carry_the_headers(
    admin: Admin, method: str, url: str, status: int
) -> None:
    response = await (await admin.client()).request(method, url)
    assert response.status_code == status
    check_headers(response)
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_unknown_path_does_not_echo_it(admin: Admin) -> None:
    response = await (await admin.client()).get("/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status_code == 404 and "script" not in response.text


async def test_server_errors_are_enveloped_with_headers(settings: Settings, admin: Admin) -> None:
    with sqlite3.connect(settings.data_dir / "netra.db") as db:
        db.execute("DROP TABLE login_attempts")  # a fault in the database, not in the request
    http = await admin.new_client(raise_app_exceptions=False)
    response = await http.post("/api/auth/login", json={"email": "a@example.com", "password": "x"})
    assert response.status_code == 500
    check_headers(response)
    assert_envelope(response.json(), type="server_error", code="internal_error")
    assert "login_attempts" not in response.text and "Traceback" not in response.text


async def test_hsts_only_over_tls(admin: Admin) -> None:
    check_headers(await (await admin.client(scheme="https")).get("/health"), tls=True)
    check_headers(await (await admin.client()).get("/health"), tls=False)


async def test_login_page_loads_its_script_from_a_file(admin: Admin) -> None:
    http = await admin.client()
    page = await http.get("/login")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/login.js"' in page.text and "<script>" not in page.text
    script = await http.get("/static/login.js")
    assert script.status_code == 200 and "innerHTML" not in script.text


def test_the_rest_api_roles_follow_the_issue() -> None:
    """admin: everything; finance: invoices, and read-only elsewhere; viewer: read-only policies (and analytics)."""
    for (method, path), role in api.PERMISSIONS.items():
        if path == api.OPENAPI_PATH:
            expected = PUBLIC
        elif path.startswith("/api/invoices"):
            expected = "finance"
        elif method != "GET":
            expected = "admin"
        else:
            expected = "viewer" if path.startswith(("/api/policies", "/api/analytics")) else "finance"
        assert role == expected, (method, path, role)
