"""The Tenants-and-keys and Provider-credentials pages' forms, as a browser posts them: the API's rules and audit
entries, the CSRF token, a key shown once, refusals shown on a page, and roles below admin refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core import audit
from core.keys import hash_key
from core.settings import Settings
from core.tenants import create_tenant, find_key, list_tenants
from tests.unit.conftest import Database
from tests.unit.dashboard_harness import Dashboard, running_dashboard

HOSTILE = '<img src=x> & "co"'
FILE_KEY = "sk-from-the-file-1111"


@pytest.fixture
async def dash(settings: Settings, database: Database, tmp_path: Path) -> AsyncIterator[Dashboard]:
    config = tmp_path / "netra.yaml"
    config.write_text(
        f"providers:\n  - {{name: openai, kind: openai, api_key: {FILE_KEY}}}\n"
        "models:\n  - {name: gpt-4o-mini, provider: openai}\n"
    )
    async with running_dashboard(settings.model_copy(update={"config": config}), database) as running:
        yield running


def token(http: httpx.AsyncClient) -> str:
    return http.cookies["netra_csrf"]


async def actions(dash: Dashboard) -> list[str]:
    """The audit log's actions, oldest first, but for the test's own sign-ups."""
    async with dash.admin.sessions() as session:
        found = [entry.action for entry in reversed(await audit.entries(session))]
    return [action for action in found if not action.startswith("user.")]


async def test_an_admin_creates_a_tenant_and_changes_its_tier_from_the_page(dash: Dashboard) -> None:
    http = await dash.browser("admin")
    forged = await http.post("/tenants", data={"csrf_token": "guess", "name": "acme", "tier": "early"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
    made = await http.post("/tenants", data={"csrf_token": token(http), "name": HOSTILE, "tier": "early"})
    assert made.status_code == 303 and made.headers["location"] == "/tenants"
    async with dash.admin.sessions() as session:
        (tenant,) = await list_tenants(session)
    assert (tenant.name, tenant.tier) == (HOSTILE, "early")
    html = (await http.get("/tenants")).text
    assert "&lt;img src=x&gt; &amp; &#34;co&#34;" in html and HOSTILE not in html
    moved = await http.post(f"/tenants/{tenant.id}/tier", data={"csrf_token": token(http), "tier": "mid"})
    assert moved.status_code == 303
    again = await http.post("/tenants", data={"csrf_token": token(http), "name": HOSTILE, "tier": "free"})
    assert again.status_code == 409 and "exists already" in again.text
    bad_tier = await http.post(f"/tenants/{tenant.id}/tier", data={"csrf_token": token(http), "tier": "platinum"})
    assert bad_tier.status_code == 400 and "must be one of" in bad_tier.text
    assert await actions(dash) == ["tenant.create", "tenant.tier"]


async def test_a_key_is_shown_once_works_and_is_revoked_from_the_page(dash: Dashboard) -> None:
    async with dash.admin.sessions() as session:
        tenant = await create_tenant(session, "acme", "early")
    http = await dash.browser("admin")
    form = {"csrf_token": token(http), "models": "gpt-4o-mini, gpt-4o", "expires_in": "30d"}
    shown = await http.post(f"/tenants/{tenant.id}/keys", data=form)
    assert shown.status_code == 201 and shown.headers["cache-control"] == "no-store"
    match = re.search(r'<code class="secret">([^<]+)</code>', shown.text)
    assert match is not None
    async with dash.admin.sessions() as session:
        record = await find_key(session, hash_key(match[1]))
    assert record is not None and record.tenant_id == tenant.id and not record.revoked
    assert record.allowed_models == {"gpt-4o-mini", "gpt-4o"} and record.expires_at is not None
    listing = (await http.get("/tenants")).text
    assert match[1] not in listing  # never shown again
    key_id = re.search(r'action="/keys/([^/"]+)/revoke"', listing)
    assert key_id is not None
    assert (await http.post(f"/keys/{key_id[1]}/revoke", data={"csrf_token": token(http)})).status_code == 303
    async with dash.admin.sessions() as session:
        revoked = await find_key(session, hash_key(match[1]))
    assert revoked is not None and revoked.revoked
    bad = await http.post(f"/tenants/{tenant.id}/keys", data={"csrf_token": token(http), "expires_in": "soon"})
    assert bad.status_code == 400 and "expires_in" in bad.text
    unknown = await http.post("/tenants/ten_nope/keys", data={"csrf_token": token(http)})
    assert unknown.status_code == 404
    assert await actions(dash) == ["key.create", "key.revoke"]


async def test_suspending_and_activating_a_tenant_from_the_page(dash: Dashboard) -> None:
    async with dash.admin.sessions() as session:
        tenant = await create_tenant(session, "acme", "free")
    http = await dash.browser("admin")
    assert (await http.post(f"/tenants/{tenant.id}/suspend", data={"csrf_token": token(http)})).status_code == 303
    html = (await http.get("/tenants")).text
    assert "free · suspended" in html and f'action="/tenants/{tenant.id}/activate"' in html
    assert (await http.post(f"/tenants/{tenant.id}/activate", data={"csrf_token": token(http)})).status_code == 303
    assert (await http.post(f"/tenants/{tenant.id}/delete", data={"csrf_token": token(http)})).status_code == 404
    assert await actions(dash) == ["tenant.suspend", "tenant.activate"]


async def test_finance_sees_tenants_without_forms_and_cannot_post_them(dash: Dashboard) -> None:
    async with dash.admin.sessions() as session:
        tenant = await create_tenant(session, "acme", "free")
    http = await dash.browser("finance")
    html = (await http.get("/tenants")).text
    assert "acme" in html and html.count("<form") == 1  # signing out only
    for path in (
        "/tenants",
        f"/tenants/{tenant.id}/keys",
        f"/tenants/{tenant.id}/suspend",
        "/credentials/openai/clear-key",
    ):
        refused = await http.post(path, data={"csrf_token": token(http), "name": "x"})
        assert refused.status_code == 403, path
    assert await actions(dash) == []


async def test_a_provider_key_and_base_url_are_set_and_cleared_from_the_page(dash: Dashboard) -> None:
    http = await dash.browser("admin")
    rotated = await http.post(
        "/credentials/openai/set-key", data={"csrf_token": token(http), "api_key": "sk-rotated-4242"}
    )
    assert rotated.status_code == 303 and rotated.headers["location"] == "/credentials"
    html = (await http.get("/credentials")).text
    assert "…4242 (override)" in html and "sk-rotated" not in html and FILE_KEY not in html
    unsafe = await http.post(
        "/credentials/openai/set-base-url", data={"csrf_token": token(http), "base_url": "http://169.254.169.254/v1"}
    )
    assert unsafe.status_code == 400 and "Refused" in unsafe.text
    moved = await http.post(
        "/credentials/openai/set-base-url", data={"csrf_token": token(http), "base_url": "https://8.8.8.8/v1"}
    )
    assert moved.status_code == 303 and "https://8.8.8.8/v1</code> (override)" in (await http.get("/credentials")).text
    for action in ("clear-key", "clear-base-url"):
        assert (await http.post(f"/credentials/openai/{action}", data={"csrf_token": token(http)})).status_code == 303
    html = (await http.get("/credentials")).text
    assert "…1111 (file)" in html and "api.openai.com" in html
    missing = await http.post("/credentials/nobody/clear-key", data={"csrf_token": token(http)})
    assert missing.status_code == 404
    assert await actions(dash) == [
        "provider.api_key.set",
        "provider.base_url.set",
        "provider.api_key.clear",
        "provider.base_url.clear",
    ]
