"""Provider credentials through the admin API: keys go in and never come out (last four characters only, in
responses, audit entries and the database file alike); base URLs pass the SSRF checks or the allowlist."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.credential_crypto import credential_key, unseal
from core.credentials import ProviderCredential, credentials_version
from core.secret_key import load_secret
from core.settings import Settings
from tests.unit.admin_harness import Admin, running_admin
from tests.unit.conftest import Database
from tests.unit.helpers import assert_envelope

CONFIG = """
providers:
  - {name: main, kind: openai, base_url: "https://api.openai.com/v1", api_key: "sk-file-key-0000AAAA"}
  - {name: claude, kind: anthropic, api_key: "sk-ant-file-key-BBBB"}
models:
  - {name: gpt-4o-mini, provider: main}
"""
NEW_KEY = "sk-proj-rotated-secret-material-WXYZ"


@pytest.fixture
def configured(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "netra.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return settings.model_copy(update={"config": path})


@pytest.fixture
async def admin(configured: Settings, database: Database) -> AsyncIterator[Admin]:
    async with running_admin(configured, database.sessions) as running:
        await running.add_user("root@example.com", "admin")
        await running.add_user("money@example.com", "finance")
        yield running


async def as_admin(admin: Admin) -> tuple[httpx.AsyncClient, dict[str, str]]:
    return await admin.client(), await admin.token("root@example.com")


def by_name(response: httpx.Response) -> dict[str, dict[str, object]]:
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()["data"]}


async def test_the_list_shows_kind_base_url_and_last_four_only(admin: Admin) -> None:
    http, auth = await as_admin(admin)
    listed = by_name(await http.get("/api/providers", headers=auth))
    assert listed["main"] == {
        "name": "main", "kind": "openai", "base_url": "https://api.openai.com/v1", "base_url_source": "file",
        "api_key_last4": "AAAA", "api_key_source": "file", "updated_at": None, "updated_by": None,
    }
    assert listed["claude"]["base_url"] == "https://api.anthropic.com"
    assert listed["claude"]["base_url_source"] == "default"
    text = (await http.get("/api/providers", headers=auth)).text
    assert "sk-file-key" not in text and "sk-ant-file" not in text


async def test_a_rotated_key_is_never_returned_stored_or_audited_in_clear(
    admin: Admin, configured: Settings, database: Database
) -> None:
    http, auth = await as_admin(admin)
    response = await http.put("/api/providers/main/api_key", json={"api_key": NEW_KEY}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["api_key_last4"] == "WXYZ" and response.json()["api_key_source"] == "override"
    assert response.json()["updated_by"] == "root@example.com"
    listing = await http.get("/api/providers", headers=auth)
    audit = await http.get("/api/audit", headers=auth)
    for text in (response.text, listing.text, audit.text):
        assert NEW_KEY not in text and NEW_KEY[:-4] not in text
    entry = next(e for e in audit.json()["data"] if e["target_type"] == "provider")
    assert (entry["action"], entry["target_id"]) == ("provider.api_key.set", "main")
    assert entry["before"]["api_key_last4"] is None and entry["after"]["api_key_last4"] == "WXYZ"
    for path in configured.data_dir.glob("netra.db*"):  # the database file and its journal, byte for byte
        assert NEW_KEY.encode() not in path.read_bytes()
    async with database.sessions() as session:
        row = await session.get(ProviderCredential, "main")
        assert row is not None and row.api_key_sealed is not None
        # What the gateway does: the same master secret, the same derived key, the key back.
        assert unseal(credential_key(load_secret(configured)), "main", row.api_key_sealed) == NEW_KEY


async def test_clearing_the_key_brings_the_file_key_back(admin: Admin, database: Database) -> None:
    http, auth = await as_admin(admin)
    await http.put("/api/providers/main/api_key", json={"api_key": NEW_KEY}, headers=auth)
    async with database.sessions() as session:
        before = await credentials_version(session)
    cleared = await http.delete("/api/providers/main/api_key", headers=auth)
    assert cleared.status_code == 200
    assert (cleared.json()["api_key_last4"], cleared.json()["api_key_source"]) == ("AAAA", "file")
    async with database.sessions() as session:
        assert await credentials_version(session) == before + 1  # gateways see a change to follow


@pytest.mark.parametrize("key", ["short", "sk-with space-1234567", "sk-line\r\nx-evil: 1", "sk-ünïcode-123456", 42])
async def test_keys_that_cannot_travel_in_a_header_are_refused(admin: Admin, key: object) -> None:
    http, auth = await as_admin(admin)
    response = await http.put("/api/providers/main/api_key", json={"api_key": key}, headers=auth)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "api_key"
    assert by_name(await http.get("/api/providers", headers=auth))["main"]["api_key_source"] == "file"


async def test_only_configured_providers_can_be_overridden(admin: Admin) -> None:
    http, auth = await as_admin(admin)
    response = await http.put("/api/providers/newcomer/api_key", json={"api_key": NEW_KEY}, headers=auth)
    assert response.status_code == 404
    assert_envelope(response.json(), type="invalid_request_error", code="provider_not_found", param="name")
    assert "newcomer" not in by_name(await http.get("/api/providers", headers=auth))


async def test_finance_and_viewers_cannot_read_or_set_keys(admin: Admin) -> None:
    http = await admin.client()
    auth = await admin.token("money@example.com")
    assert (await http.get("/api/providers", headers=auth)).status_code == 403
    refused = await http.put("/api/providers/main/api_key", json={"api_key": NEW_KEY}, headers=auth)
    assert refused.status_code == 403
    root = await admin.token("root@example.com")
    assert by_name(await http.get("/api/providers", headers=root))["main"]["api_key_source"] == "file"


async def test_an_internal_base_url_needs_the_allowlist(admin: Admin) -> None:
    http, auth = await as_admin(admin)
    body = {"base_url": "http://127.0.0.1:9000/v1"}
    refused = await http.put("/api/providers/main/base_url", json=body, headers=auth)
    assert refused.status_code == 400
    assert_envelope(refused.json(), type="invalid_request_error", code="unsafe_base_url", param="base_url")
    assert "loopback" in refused.json()["error"]["message"]
    added = await http.post("/api/provider-allowlist", json={"host": "127.0.0.1"}, headers=auth)
    assert added.status_code == 201 and added.json()["host"] == "127.0.0.1"
    accepted = await http.put("/api/providers/main/base_url", json=body, headers=auth)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["base_url"], accepted.json()["base_url_source"]) == (body["base_url"], "override")
    assert accepted.json()["api_key_last4"] == "AAAA"  # the file's key stays


async def test_the_allowlist_is_managed_and_audited(admin: Admin) -> None:
    http, auth = await as_admin(admin)
    assert (await http.post("/api/provider-allowlist", json={"host": "VLLM.internal"}, headers=auth)).status_code \
        == 201
    assert (await http.post("/api/provider-allowlist", json={"host": "http://x/"}, headers=auth)).status_code == 400
    listed = (await http.get("/api/provider-allowlist", headers=auth)).json()["data"]
    assert [h["host"] for h in listed] == ["vllm.internal"] and listed[0]["added_by"] == "root@example.com"
    assert (await http.delete("/api/provider-allowlist/vllm.internal", headers=auth)).status_code == 204
    missing = await http.delete("/api/provider-allowlist/vllm.internal", headers=auth)
    assert missing.status_code == 404
    actions = [e["action"] for e in (await http.get("/api/audit", headers=auth)).json()["data"]]
    assert actions[:2] == ["provider_allowlist.remove", "provider_allowlist.add"]


async def test_an_anthropic_base_url_is_the_host_only(admin: Admin) -> None:
    http, auth = await as_admin(admin)
    response = await http.put("/api/providers/claude/base_url", json={"base_url": "https://1.1.1.1/v1"},
                              headers=auth)
    assert response.status_code == 400 and response.json()["error"]["param"] == "base_url"
