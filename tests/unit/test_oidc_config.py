"""Single sign-on's settings: the role map's rules, the checks at start-up, and the app with it off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from admin.oidc_config import CALLBACK_PATH, OidcConfigError, RoleMap, oidc_config
from admin.permissions import PERMISSIONS, PUBLIC
from cli.main import main
from core.settings import Settings
from tests.unit.admin_harness import running_admin
from tests.unit.conftest import Database
from tests.unit.helpers import assert_envelope
from tests.unit.oidc_harness import ROLE_MAP, running_sso

MAP = RoleMap.parse(json.dumps(ROLE_MAP))


@pytest.mark.parametrize("email, claims, role", [
    ("ada@example.com", {}, "viewer"),
    ("ada@EXAMPLE.COM", {}, "viewer"),
    ("ada@sub.example.com", {}, None),  # domains match exactly, not their subdomains
    ("ada@example.com.evil.io", {}, None),
    ("ada@other.io", {"groups": ["netra-admins"]}, "admin"),
    ("ada@example.com", {"groups": ["finance"]}, "finance"),
    ("ada@example.com", {"groups": ["finance", "netra-admins"]}, "admin"),
    ("ada@other.io", {"groups": "finance"}, "finance"),
    ("ada@other.io", {"groups": ["Finance", "netra-admins-old"]}, None),  # values match exactly
    ("ada@other.io", {"groups": {"finance": True}}, None),
    ("ada@other.io", {"groups": [1, None, "finance"]}, "finance"),
    ("ada@other.io", {"roles": ["finance"]}, None),  # only the claims the map names count
])
def test_the_strongest_matching_rule_gives_the_role(email: str, claims: dict[str, Any], role: str | None) -> None:
    assert MAP.role_for(email, claims) == role


@pytest.mark.parametrize("raw, complaint", [
    ("{not json", "not valid JSON"),
    ("[]", "must be an object"),
    ('{"domain": {"example.com": "viewer"}}', "must be an object"),
    ('{"domains": {"example.com": "owner"}}', "domains.example.com maps to 'owner'"),
    ('{"claims": {"groups": ["admin"]}}', "claims.groups must be an object"),
    ('{"claims": {"groups": {"ops": "superuser"}}}', "claims.groups.ops"),
    ('{"claims": []}', "claims must be an object"),
])
def test_a_malformed_role_map_is_refused_with_its_fault(raw: str, complaint: str) -> None:
    with pytest.raises(OidcConfigError, match="NETRA_OIDC_ROLE_MAP") as caught:
        RoleMap.parse(raw)
    assert complaint in str(caught.value)


def test_sso_is_off_without_an_issuer(settings: Settings) -> None:
    assert oidc_config(settings) is None


def test_an_issuer_without_the_rest_names_what_is_missing(settings: Settings) -> None:
    partial = settings.model_copy(update={"oidc_issuer": "https://id.example.com",
                                          "oidc_client_secret": SecretStr("hush-hush")})
    with pytest.raises(OidcConfigError) as caught:
        oidc_config(partial)
    message = str(caught.value)
    assert "NETRA_OIDC_CLIENT_ID" in message and "NETRA_OIDC_REDIRECT_BASE_URL" in message
    assert "NETRA_OIDC_ROLE_MAP" in message and "CLIENT_SECRET" not in message and "hush" not in message


@pytest.mark.parametrize("change, complaint", [
    ({"oidc_redirect_base_url": "admin.example.com"}, "REDIRECT_BASE_URL"),
    ({"oidc_scopes": "email profile"}, "openid"),
])
def test_bad_values_are_refused(settings: Settings, change: dict[str, Any], complaint: str) -> None:
    complete = {"oidc_issuer": "https://id.example.com", "oidc_client_id": "netra",
                "oidc_client_secret": SecretStr("s"), "oidc_redirect_base_url": "https://admin.example.com/",
                "oidc_role_map": json.dumps(ROLE_MAP)}
    config = oidc_config(settings.model_copy(update=complete))
    assert config is not None and config.redirect_uri == "https://admin.example.com" + CALLBACK_PATH
    with pytest.raises(OidcConfigError, match=complaint):
        oidc_config(settings.model_copy(update=complete | change))


async def test_the_app_refuses_to_start_half_configured(settings: Settings, database: Database) -> None:
    with pytest.raises(OidcConfigError, match="NETRA_OIDC_CLIENT_ID"):
        async with running_admin(settings.model_copy(update={"oidc_issuer": "https://id.example.com"}),
                                 database.sessions):
            pass


async def test_with_sso_off_its_routes_answer_404_and_the_page_hides_the_link(
    settings: Settings, database: Database
) -> None:
    async with running_admin(settings, database.sessions) as admin:
        http = await admin.client()
        assert (await http.get("/api/auth/oidc")).json() == {"enabled": False, "login_url": "/api/auth/oidc/login"}
        for url in ("/api/auth/oidc/login", "/api/auth/oidc/callback?code=x&state=y"):
            response = await http.get(url)
            assert response.status_code == 404
            assert_envelope(response.json(), type="invalid_request_error", code="sso_not_configured")
        page = (await http.get("/login")).text
        assert '<p id="sso" hidden><a href="/api/auth/oidc/login">Sign in with SSO</a></p>' in page
        script = (await http.get("/static/login.js")).text
        assert 'fetch("/api/auth/oidc")' in script and '"sso").hidden = false' in script


async def test_with_sso_on_the_page_is_told_to_offer_it(settings: Settings, database: Database) -> None:
    async with running_sso(settings, database.sessions) as sso:
        status = await (await sso.admin.client()).get("/api/auth/oidc")
        assert status.json() == {"enabled": True, "login_url": "/api/auth/oidc/login"}


def test_only_the_sso_entry_points_are_public() -> None:
    public = {key for key, rule in PERMISSIONS.items() if rule == PUBLIC and key[1].startswith("/api/auth/oidc")}
    assert public == {("GET", "/api/auth/oidc"), ("GET", "/api/auth/oidc/login"), ("GET", "/api/auth/oidc/callback")}


async def test_anonymous_callers_reach_the_sso_routes_when_it_is_on(settings: Settings, database: Database) -> None:
    async with running_sso(settings, database.sessions) as sso:
        http = await sso.browser(follow=False)
        assert (await http.get("/api/auth/oidc/login")).status_code == 302
        refused = await http.get("/api/auth/oidc/callback")  # no sign-in started: refused, but not as a 401
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "sso_state_invalid"
        assert (await http.post("/api/auth/oidc/login")).status_code == 405


@pytest.mark.parametrize("command", ["admin", "run"])
def test_netra_admin_and_run_say_what_sso_lacks_in_one_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NETRA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NETRA_OIDC_ISSUER", "https://id.example.com")
    monkeypatch.setenv("NETRA_OIDC_CLIENT_SECRET", "hush-hush")
    assert main([command]) != 0
    error = capsys.readouterr().err
    assert "NETRA_OIDC_CLIENT_ID" in error and "hush" not in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
