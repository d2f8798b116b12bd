"""The `netra` commands, run while the server runs, as an operator scripts them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import openai
import pytest

from tests.e2e.conftest import Deployment
from tests.e2e.harness import ROOT

USER = [{"role": "user", "content": "hi"}]


def test_tenants_list_as_json(deployment: Deployment) -> None:
    tenants = {t["name"]: t for t in json.loads(deployment.netra.cli("tenants", "list", "--json").stdout)}
    assert tenants["acme"]["tier"] == "enterprise" and tenants["tiny"]["tier"] == "free"
    assert all(t["status"] == "active" for t in tenants.values())


def test_duplicate_tenant_is_refused(deployment: Deployment) -> None:
    done = deployment.netra.cli("tenants", "create", "acme", check=False)
    assert done.returncode == 1 and "already exists" in done.stderr


def test_key_is_printed_alone_and_never_listed(deployment: Deployment) -> None:
    netra = deployment.netra
    out = netra.cli("keys", "create", "--tenant", "tiny", "--models", "gpt-4o-mini", "--expires-in", "30d").stdout
    key = out.strip()
    assert out.count("\n") == 1 and key.startswith("nk-") and len(key) > 40
    listed = json.loads(netra.cli("keys", "list", "--tenant", "tiny", "--json").stdout)
    mine = next(k for k in listed if key.startswith(k["prefix"]))
    assert mine["models"] == ["gpt-4o-mini"] and mine["expires_at"] and mine["status"] == "active"
    assert key not in json.dumps(listed)


def test_bad_duration_is_explained(deployment: Deployment) -> None:
    done = deployment.netra.cli("keys", "create", "--tenant", "tiny", "--expires-in", "soon", check=False)
    assert done.returncode == 1 and "duration" in done.stderr and done.stdout == ""


def test_revoked_key_stops_working_within_seconds(deployment: Deployment) -> None:
    netra = deployment.netra
    key = netra.cli("keys", "create", "--tenant", "acme").stdout.strip()
    client = deployment.client(key)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=USER).choices
    netra.cli("keys", "revoke", key[:11])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        except openai.AuthenticationError:
            return
        time.sleep(0.5)
    pytest.fail("a revoked key still worked 15 s later")


def test_suspended_tenant_is_refused(deployment: Deployment) -> None:
    netra = deployment.netra
    netra.cli("tenants", "create", "shady")
    key = netra.cli("keys", "create", "--tenant", "shady").stdout.strip()
    netra.cli("tenants", "suspend", "shady")
    client = deployment.client(key)
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert err.value.code == "tenant_suspended"  # type: ignore[attr-defined]


def test_price_versions_are_stored(deployment: Deployment) -> None:
    listing = deployment.netra.cli("prices", "show").stdout
    version = listing.split("\t")[0]
    assert version.startswith("litellm-")
    table = json.loads(deployment.netra.cli("prices", "show", "--version", version).stdout)
    assert table["models"]["gpt-4o-mini"]["input"] == "0.00000015"


def test_ledger_commands_read_while_the_server_runs(deployment: Deployment) -> None:
    client = deployment.client()
    served = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    rid = served.headers["x-request-id"]
    deadline = time.monotonic() + 60
    while True:  # the row reaches the store within the flush interval
        done = deployment.netra.cli("ledger", "export", "--format", "csv", check=False)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        if rid in done.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done.stdout.startswith("request_id,") and rid in done.stdout


def test_a_new_tier_reaches_the_tenants_keys_within_seconds(deployment: Deployment) -> None:
    netra = deployment.netra
    netra.cli("tenants", "create", "mover")
    client = deployment.client(netra.cli("keys", "create", "--tenant", "mover").stdout.strip())

    def limit() -> str:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
        return raw.headers["x-ratelimit-limit-requests"]

    assert limit() == "100"
    done = netra.cli("tenants", "set-tier", "mover", "mid")
    assert done.stdout == "tenant mover is now on tier mid (10,000 requests/hour)\n"
    listed = {t["name"]: t for t in json.loads(netra.cli("tenants", "list", "--json").stdout)}
    assert listed["mover"]["tier"] == "mid"
    deadline = time.monotonic() + 15
    while limit() != "10000":
        assert time.monotonic() < deadline, "the new tier's limit did not apply within 15 s"
        time.sleep(0.5)


def test_set_tier_names_what_is_wrong(deployment: Deployment) -> None:
    missing = deployment.netra.cli("tenants", "set-tier", "nosuch", "mid", check=False)
    assert missing.returncode == 1 and missing.stderr == "netra: no tenant named 'nosuch'\n"
    bad = deployment.netra.cli("tenants", "set-tier", "acme", "platinum", check=False)
    assert bad.returncode == 2 and "invalid choice: 'platinum'" in bad.stderr


def test_keys_list_prints_models_as_a_plain_list(deployment: Deployment) -> None:
    netra = deployment.netra
    netra.cli("tenants", "create", "lister")
    netra.cli("keys", "create", "--tenant", "lister", "--models", "gpt-4o-mini,gpt-4o")
    netra.cli("keys", "create", "--tenant", "lister")
    table = netra.cli("keys", "list", "--tenant", "lister").stdout.splitlines()
    models = [line.split()[3] for line in table[1:]]
    assert table[0].split()[3] == "MODELS" and models == ["gpt-4o,gpt-4o-mini", "all"]
    listed = json.loads(netra.cli("keys", "list", "--tenant", "lister", "--json").stdout)
    assert [k["models"] for k in listed] == [["gpt-4o", "gpt-4o-mini"], []]


def test_ledger_for_an_unknown_tenant_is_an_error(deployment: Deployment) -> None:
    for command in ("summary", "export --format csv"):
        done = deployment.netra.cli("ledger", *command.split(), "--tenant", "NOSUCH", check=False)
        assert done.returncode == 1 and done.stderr == "netra: no tenant named 'NOSUCH'\n" and done.stdout == ""


def test_the_readme_snippet_runs_as_written(deployment: Deployment) -> None:
    snippet = (ROOT / "README.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
    code = snippet.replace("http://127.0.0.1:8080/v1", deployment.netra.url)
    env = {**os.environ, "NETRA_KEY": deployment.keys["acme"]}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    reply, streamed = done.stdout.split("\n", 1)
    assert reply and streamed
