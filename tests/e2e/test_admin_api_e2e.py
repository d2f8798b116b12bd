"""The REST API as an operator's script meets it, against `netra run`: a tenant and key made through the admin
app serve calls at the gateway (OpenAI SDK); a cache policy created and activated through the admin process is
applied by the gateway process within 2 s; the draft invoice and the analytics are read through the running
ledger process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.harness import NETRA, ROOT, Netra, free_port, make_netra

pytestmark = pytest.mark.slow
PASSWORD = "a passphrase nobody guesses"
WITHIN = 2.0


@pytest.fixture
def running(tmp_path: Path, fake_url: str) -> Iterator[tuple[Netra, httpx.Client]]:
    """`netra run`, an admin user, and an HTTP client on the admin app signed in as that user."""
    netra = make_netra(tmp_path, fake_url)
    netra.cli("migrate")
    subprocess.run([*NETRA, "users", "create", "ops@example.com", "--role", "admin"], cwd=ROOT, env=netra.env,
                   input=PASSWORD + "\n", capture_output=True, text=True, timeout=120, check=True)
    admin_port = free_port()
    netra.start("run", "--admin-port", str(admin_port))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{admin_port}", timeout=30) as admin:
            deadline = time.monotonic() + 60
            while not _answers(admin) and time.monotonic() < deadline:
                time.sleep(0.1)
            token = admin.post("/api/auth/login", json={"email": "ops@example.com", "password": PASSWORD})
            admin.headers["authorization"] = f"Bearer {token.json()['access_token']}"
            yield netra, admin
    finally:
        netra.stop()


def _answers(admin: httpx.Client) -> bool:
    try:
        return admin.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def created(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def cache_outcome(client: openai.OpenAI) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "What is 2 + 2?"}], temperature=0)
    return str(raw.headers["x-netra-cache"])


def test_tenant_key_policy_and_invoice_through_the_api(running: tuple[Netra, httpx.Client]) -> None:
    netra, admin = running
    tenant = created(admin.post("/api/tenants", json={"name": "acme", "tier": "early"}))
    key = created(admin.post(f"/api/tenants/{tenant['id']}/keys", json={}))["key"]
    client = openai.OpenAI(base_url=netra.url, api_key=key, max_retries=0)
    assert cache_outcome(client) == "bypass"
    policy = {"kind": "cache", "name": "acme", "match": {"tenants": ["acme"]}, "ttl": "1h"}
    pid = created(admin.post("/api/policies", json=policy))["id"]
    created(admin.post(f"/api/policies/{pid}/activate"))
    seen, deadline = [], time.monotonic() + WITHIN
    while (not seen or seen[-1] != "hit") and time.monotonic() < deadline:
        seen.append(cache_outcome(client))
    assert seen[-1] == "hit", f"the gateway did not apply the policy within {WITHIN} s: {seen}"
    month, query = datetime.now(UTC).strftime("%Y-%m"), {"tenant_id": tenant["id"]}
    draft: dict[str, Any] = {"calls": 0}
    for _ in range(300):  # the ledger process ingests the calls' rows within a moment
        draft = created(admin.get("/api/invoices/draft", params={**query, "month": month}))
        if draft["calls"] == len(seen) + 1:
            break
        time.sleep(0.1)
    assert (draft["status"], draft["tenant"], draft["calls"]) == ("draft", "acme", len(seen) + 1)
    total = 0
    for _ in range(300):  # the rollups analytics read catch up with the ledger a moment later
        series = created(admin.get("/api/analytics/timeseries", params={**query, "granularity": "day"}))
        total = sum(point["totals"]["requests"] for point in series["data"])
        if total == len(seen) + 1:
            break
        time.sleep(0.1)
    assert total == len(seen) + 1
    found = created(admin.get("/api/analytics/calls", params={**query, "limit": 500}))
    assert found["rows"][0]["cache_outcome"] == "hit" and len(found["rows"]) == len(seen) + 1  # newest first
    key_id = created(admin.get(f"/api/tenants/{tenant['id']}/keys"))["data"][0]["id"]
    created(admin.post(f"/api/keys/{key_id}/revoke"))
    with pytest.raises(openai.AuthenticationError):
        for _ in range(100):  # the gateway caches a key's record for a few seconds
            cache_outcome(client)
            time.sleep(0.1)
