"""Single sign-on through the admin app against the fake issuer: the whole flow as a browser follows it, roles from
the map, the users it records, and the state and nonce that bind a sign-in to the browser that started it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from admin import auth_api
from core.passwords import verify_password
from core.settings import Settings
from core.user_store import create_user, disable_by_email, list_users
from tests.unit.admin_harness import PASSWORD, PASSWORD_HASH
from tests.unit.conftest import Database
from tests.unit.helpers import assert_envelope
from tests.unit.oidc_harness import ADA, ADMIN_URL, CALLBACK, Sso, running_sso


@pytest.fixture
async def sso(settings: Settings, database: Database) -> AsyncIterator[Sso]:
    async with running_sso(settings, database.sessions) as running:
        yield running


async def users(sso: Sso) -> dict[str, str]:
    async with sso.admin.sessions() as session:
        return {user.email: user.role for user in await list_users(session)}


async def test_signing_in_through_the_issuer_gives_the_mapped_role(sso: Sso) -> None:
    browser = await sso.browser()
    landed = await sso.sign_in(browser)
    assert landed.status_code == 200 and str(landed.url) == f"{ADMIN_URL}/login"
    hops = [str(r.url).split("?")[0] for r in landed.history]
    assert hops == [f"{ADMIN_URL}/api/auth/oidc/login", f"{sso.issuer.url}/protocol/auth", CALLBACK]
    asked = sso.issuer.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["nonce"] and asked["state"] and asked["scope"] == "openid email profile"
    assert browser.cookies.get("netra_oidc") is None  # the flow cookie is spent
    me = await sso.me(browser)
    assert me.status_code == 200, me.text
    assert me.json() | {"id": None} == {"id": None, "email": "ada@example.com", "role": "admin"}


async def test_the_first_sign_in_creates_an_audited_user_without_a_password(sso: Sso) -> None:
    await sso.sign_in()
    await sso.sign_in()  # the second finds the same user
    assert await users(sso) == {"ada@example.com": "admin"}
    refused = await sso.admin.login("ada@example.com", PASSWORD)
    assert refused.status_code == 401
    for guess in ("", "!oidc:", "248289761001"):
        assert (await sso.admin.login("ada@example.com", guess)).status_code in (400, 401)
    await sso.admin.add_user("root@example.com", "admin")
    headers = await sso.admin.token("root@example.com")
    audit = (await (await sso.admin.client()).get("/api/audit", headers=headers)).json()["data"]
    created = [row for row in audit if row["action"] == "user.create" and row["after"]["email"] == "ada@example.com"]
    assert len(created) == 1
    assert created[0]["actor"] == "oidc:ada@example.com" and created[0]["after"]["role"] == "admin"
    assert created[0]["address"] == "203.0.113.9"


@pytest.mark.parametrize("claims, role", [
    ({"email": "bob@example.com", "groups": []}, "viewer"),                        # by domain
    ({"email": "bob@EXAMPLE.com", "groups": "finance"}, "finance"),                # a string claim; strongest wins
    ({"email": "bob@contractor.io", "groups": ["finance", "staff"]}, "finance"),   # by claim alone
    ({"email": "bob@contractor.io", "groups": ["finance", "netra-admins"]}, "admin"),
])
async def test_roles_come_from_the_map(sso: Sso, claims: dict[str, object], role: str) -> None:
    sso.issuer.user = {"sub": "bob-1", "email_verified": True, **claims}
    browser = await sso.browser()
    await sso.sign_in(browser)
    assert (await sso.me(browser)).json()["role"] == role


async def test_an_identity_no_rule_maps_is_refused_not_made_a_viewer(sso: Sso) -> None:
    sso.issuer.user = {"sub": "eve-1", "email": "eve@elsewhere.org", "email_verified": True, "groups": ["staff"]}
    browser = await sso.browser()
    refused = await sso.sign_in(browser)
    assert refused.status_code == 403
    assert_envelope(refused.json(), type="permission_error", code="sso_no_role")
    assert "eve@elsewhere.org" in refused.json()["error"]["message"]
    assert await users(sso) == {} and browser.cookies.get("netra_refresh") is None


async def test_an_unverified_email_is_refused(sso: Sso) -> None:
    sso.issuer.user = {**ADA, "email_verified": False}
    refused = await sso.sign_in()
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_email_unverified"
    assert await users(sso) == {}


async def test_the_role_follows_the_map_on_every_sign_in(sso: Sso) -> None:
    await sso.sign_in()
    sso.issuer.user = {**ADA, "groups": ["finance"]}  # removed from netra-admins at the issuer
    browser = await sso.browser()
    await sso.sign_in(browser)
    assert (await sso.me(browser)).json()["role"] == "finance"
    assert await users(sso) == {"ada@example.com": "finance"}


async def test_a_disabled_user_is_refused(sso: Sso) -> None:
    await sso.sign_in()
    async with sso.admin.sessions() as session:
        await disable_by_email(session, "ada@example.com", actor="test")
    refused = await sso.sign_in()
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "user_disabled"


async def test_a_password_account_is_not_taken_over_by_email(sso: Sso) -> None:
    async with sso.admin.sessions() as session:
        await create_user(session, "ada@example.com", PASSWORD_HASH, "viewer", actor="test")
    refused = await sso.sign_in()
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_account_conflict"
    assert (await sso.admin.login("ada@example.com")).status_code == 200  # the password still works


async def test_another_subject_with_the_same_email_is_refused(sso: Sso) -> None:
    await sso.sign_in()
    sso.issuer.user = {**ADA, "sub": "someone-who-got-the-address-later"}
    refused = await sso.sign_in()
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_account_conflict"


async def stop_at_callback(sso: Sso, browser: httpx.AsyncClient) -> str:
    """Start a sign-in and let the issuer approve it, but do not deliver the callback yet: its URL."""
    started = await browser.get("/api/auth/oidc/login")
    approved = await browser.get(started.headers["location"])
    assert approved.status_code == 302
    return approved.headers["location"]


async def test_a_callback_in_another_browser_is_refused(sso: Sso) -> None:
    victim, attacker = await sso.browser(follow=False), await sso.browser(follow=False)
    callback = await stop_at_callback(sso, attacker)  # login CSRF: the attacker's code, in the victim's browser
    await victim.get("/api/auth/oidc/login")
    for browser in (victim, await sso.browser(follow=False)):  # another sign-in's cookie, or none at all
        refused = await browser.get(callback)
        assert refused.status_code == 400
        assert_envelope(refused.json(), type="invalid_request_error", code="sso_state_invalid", param="state")
        assert browser.cookies.get("netra_refresh") is None


async def test_a_state_that_does_not_match_the_cookie_is_refused(sso: Sso) -> None:
    browser = await sso.browser(follow=False)
    callback = await stop_at_callback(sso, browser)
    query = parse_qs(urlsplit(callback).query)
    forged = f"{CALLBACK}?code={query['code'][0]}&state=not-{query['state'][0]}"
    refused = await browser.get(forged)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "sso_state_invalid"


async def test_a_replayed_callback_is_refused(sso: Sso) -> None:
    browser = await sso.browser(follow=False)
    callback = await stop_at_callback(sso, browser)
    flow_cookie = browser.cookies.get("netra_oidc")
    assert (await browser.get(callback)).status_code == 303
    again = await browser.get(callback)  # the browser dropped the flow cookie
    assert again.status_code == 400 and again.json()["error"]["code"] == "sso_state_invalid"
    browser.cookies.set("netra_oidc", flow_cookie or "", domain="admin.test", path="/api/auth/oidc")
    replayed = await browser.get(callback)  # the cookie kept by whoever replays it: the code is spent
    assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "sso_code_refused"


async def test_a_sign_in_left_too_long_is_refused(sso: Sso) -> None:
    browser = await sso.browser(follow=False)
    callback = await stop_at_callback(sso, browser)
    sso.admin.clock.advance(11 * 60)
    refused = await browser.get(callback)
    assert refused.status_code == 400 and "too long" in refused.json()["error"]["message"]


async def test_the_issuer_saying_no_is_refused(sso: Sso) -> None:
    sso.issuer.user = None
    refused = await sso.sign_in()
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "sso_denied"
    assert "access_denied" in refused.json()["error"]["message"]


async def test_a_password_login_to_an_sso_user_costs_a_full_hash_check(
    sso: Sso, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sso.sign_in()
    checked: list[str] = []

    def recording(stored: str, password: str) -> bool:
        checked.append(stored)
        return verify_password(stored, password)

    monkeypatch.setattr(auth_api, "verify_password", recording)
    assert (await sso.admin.login("ada@example.com", PASSWORD)).status_code == 401
    # The decoy Argon2 hash is verified, as for an unknown email, not the marker (which would fail at once).
    assert len(checked) == 1 and checked[0].startswith("$argon2id$")
