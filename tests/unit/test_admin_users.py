"""Managing users through the API, and the audit log those changes write (which nobody can edit)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.settings import Settings
from tests.unit.admin_harness import Admin, running_admin
from tests.unit.conftest import Database
from tests.unit.helpers import assert_envelope

NEW = {"email": "New.Person@Example.com", "password": "a long enough password", "role": "finance"}


@pytest.fixture
async def admin(settings: Settings, database: Database) -> AsyncIterator[Admin]:
    async with running_admin(settings, database.sessions) as running:
        await running.add_user("root@example.com", "admin")
        yield running


async def audit_rows(admin: Admin, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await (await admin.client()).get("/api/audit", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_created_user_can_sign_in_and_is_audited(admin: Admin) -> None:
    root = await admin.token("root@example.com")
    http = await admin.client()
    created = await http.post("/api/users", json=NEW, headers=root)
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == "new.person@example.com" and user["role"] == "finance" and not user["disabled"]
    assert "password" not in created.text and "argon2" not in created.text
    assert (await admin.login("new.person@example.com", NEW["password"])).status_code == 200
    entry = (await audit_rows(admin, root))[0]
    assert (entry["actor"], entry["action"], entry["target_type"], entry["target_id"]) == (
        "root@example.com", "user.create", "user", user["id"])
    assert entry["before"] is None and entry["after"] == user and entry["address"] == "203.0.113.7"


async def test_disable_is_audited_with_before_and_after(admin: Admin) -> None:
    root = await admin.token("root@example.com")
    http = await admin.client()
    user_id = (await http.post("/api/users", json=NEW, headers=root)).json()["id"]
    disabled = await http.post(f"/api/users/{user_id}/disable", headers=root)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    entry = (await audit_rows(admin, root))[0]
    assert entry["action"] == "user.disable" and entry["target_id"] == user_id
    assert entry["before"]["disabled"] is False and entry["after"]["disabled"] is True
    assert entry["after"]["disabled_at"] is not None
    listed = {u["id"]: u for u in (await http.get("/api/users", headers=root)).json()["data"]}
    assert listed[user_id]["disabled"] is True


async def test_disabling_ends_the_users_sessions(admin: Admin) -> None:
    root = await admin.token("root@example.com")
    victim_id = await admin.add_user("ana@example.com", "viewer")
    victim = await admin.client("198.51.100.3")
    assert (await admin.login("ana@example.com", address="198.51.100.3")).status_code == 200
    assert (await (await admin.client()).post(f"/api/users/{victim_id}/disable", headers=root)).status_code == 200
    refreshed = await victim.post("/api/auth/refresh", headers={"x-csrf-token": victim.cookies["netra_csrf"]})
    assert refreshed.status_code == 401


@pytest.mark.parametrize("change, param", [
    ({"email": "no-at-sign"}, "email"),
    ({"role": "superuser"}, "role"),
    ({"password": "short"}, "password"),
    ({"password": "            "}, "password"),
])
async def test_invalid_new_users_are_refused(admin: Admin, change: dict[str, str], param: str) -> None:
    root = await admin.token("root@example.com")
    response = await (await admin.client()).post("/api/users", json={**NEW, **change}, headers=root)
    assert response.status_code == 400
    assert_envelope(response.json(), type="invalid_request_error", code="invalid_value", param=param)


async def test_duplicate_email_is_a_conflict_in_any_case(admin: Admin) -> None:
    root = await admin.token("root@example.com")
    response = await (await admin.client()).post("/api/users", json={**NEW, "email": "ROOT@example.com"},
                                                  headers=root)
    assert response.status_code == 409
    assert_envelope(response.json(), type="invalid_request_error", code="user_exists", param="email")
    assert all(e["action"] != "user.create" or e["actor"] == "test" for e in await audit_rows(admin, root))


async def test_admin_cannot_disable_itself_and_unknown_users_are_404(admin: Admin) -> None:
    root = await admin.token("root@example.com")
    http = await admin.client()
    me = (await http.get("/api/me", headers=root)).json()["id"]
    refused = await http.post(f"/api/users/{me}/disable", headers=root)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "cannot_disable_self"
    missing = await http.post("/api/users/usr_nobody/disable", headers=root)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "user_not_found"


async def test_audit_pages_back_and_checks_its_parameters(admin: Admin) -> None:
    root = await admin.token("root@example.com")
    for n in range(3):
        await admin.add_user(f"u{n}@example.com", "viewer")
    newest = await audit_rows(admin, root, limit=2)
    assert [e["target_id"] for e in newest] != [] and len(newest) == 2
    older = await audit_rows(admin, root, limit=2, before=newest[-1]["id"])
    assert [e["id"] for e in older] == [newest[-1]["id"] - 1, newest[-1]["id"] - 2]
    bad = await (await admin.client()).get("/api/audit", headers=root, params={"limit": "0"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"])
async def test_the_database_refuses_to_edit_the_audit_log(admin: Admin, settings: Settings, statement: str) -> None:
    with sqlite3.connect(settings.data_dir / "netra.db") as db:
        assert db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 1
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(statement)
        assert db.execute("SELECT actor FROM audit_log").fetchall() == [("test",)]


async def test_audit_has_no_write_routes(admin: Admin) -> None:
    root = await admin.token("root@example.com")
    http = await admin.client()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert (await http.request(method, "/api/audit", headers=root)).status_code == 405
