"""A running Netra for the browser tests: `netra run` (gateway, ledger process and admin app), set up with the CLI
as an operator would, with a small workload replayed through the gateway by the OpenAI SDK."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai

from tests.e2e.harness import NETRA, ROOT, Netra, make_netra
from tests.invoice_rows import ledger_row

PASSWORD = "a passphrase for the browser test"
EMAIL = "ops@example.com"
PAST_MONTH = "2024-11"  # long past, so it can be issued whatever today is
ACTIVE = """
kind: cache
name: cache acme's mini chats
match: {tenants: [acme], models: [gpt-4o-mini]}
ttl: 1h
"""
PROPOSED = """
kind: cache
name: cache gpt-4o answers <b>too</b>
author: agent:run-7
rationale: repeated questions on gpt-4o
estimate: {monthly_saving_usd: "321.50", traffic_share: 0.25}
match: {models: [gpt-4o]}
ttl: 1h
"""
WRITER = """
import json, sys
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore
from core.settings import Settings
store = ClickHouseStore.open(Settings())
upgrade_clickhouse(store)
store.insert_rows(json.load(sys.stdin), "browser-test")
store.close()
"""


@dataclass
class Site:
    """The gateway and admin app of one test module."""

    netra: Netra
    admin_url: str
    keys: dict[str, str]
    proposed_id: str

    def client(self, tenant: str = "acme") -> openai.OpenAI:
        """An SDK client as an application would use it."""
        return openai.OpenAI(base_url=self.netra.url, api_key=self.keys[tenant], max_retries=0)


def ask(client: openai.OpenAI, model: str, question: str) -> str:
    """One deterministic chat call; returns the gateway's x-netra-cache outcome."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, temperature=0, messages=[{"role": "user", "content": question}])
    return raw.headers["x-netra-cache"]


def replay(site: Site) -> list[str]:
    """A small workload: repeated questions on the cached model (hits), and gpt-4o questions (not cached yet)."""
    outcomes = []
    with site.client() as acme:
        for _ in range(3):
            outcomes += [ask(acme, "gpt-4o-mini", f"What is {n} + {n}?") for n in range(4)]
        outcomes += [ask(acme, "gpt-4o", f"Spell {word}") for word in ("cat", "dog")]
    return outcomes


def _policies(netra: Netra, tmp: Path) -> str:
    (tmp / "active.yaml").write_text(ACTIVE)
    (tmp / "proposed.yaml").write_text(PROPOSED)
    active = netra.cli("policies", "add", str(tmp / "active.yaml")).stdout.strip()
    netra.cli("policies", "activate", active)
    return netra.cli("policies", "add", str(tmp / "proposed.yaml")).stdout.strip()


def _past_rows(netra: Netra) -> None:
    """Ledger rows of a past month for acme (invoices bill whole months that have ended)."""
    tenants = {t["name"]: t["id"] for t in json.loads(netra.cli("tenants", "list", "--json").stdout)}
    at = datetime(2024, 11, 5, 9, tzinfo=UTC)
    rows = [ledger_row(f"past-{i}", tenants["acme"], "acme", at, kind="cache", cost="0", baseline="1.25")
            for i in range(8)]
    done = subprocess.run([sys.executable, "-c", WRITER], cwd=ROOT, env=netra.env, input=json.dumps(rows),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def wait_until(ready: Callable[[], bool], what: str) -> None:
    """Poll until `ready()` (a minute at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} never happened")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _logged(netra: Netra, count: int) -> bool:
    """Whether the ledger holds `count` calls (read while Netra runs, through the ledger process)."""
    done = netra.cli("ledger", "summary", "--json", "--since", "1d", check=False)
    return done.returncode == 0 and json.loads(done.stdout)["requests"] == count


def start_site(tmp: Path, fake_url: str) -> Site:
    """Set up tenants, keys, policies and a past month's rows with the CLI, start `netra run`, replay a workload."""
    netra = make_netra(tmp, fake_url)
    netra.cli("migrate")
    keys = {}
    for name, tier in (("acme", "early"), ("tiny", "free")):
        netra.cli("tenants", "create", name, "--tier", tier)
        keys[name] = netra.cli("keys", "create", "--tenant", name).stdout.strip()
    site = Site(netra, f"http://127.0.0.1:{netra.env['NETRA_ADMIN_PORT']}", keys, _policies(netra, tmp))
    _past_rows(netra)
    made = subprocess.run([*NETRA, "users", "create", EMAIL, "--role", "admin"], cwd=ROOT, env=netra.env,
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    netra.start("run")
    wait_until(lambda: _answers(site.admin_url + "/health"), "the admin app answering")
    outcomes = replay(site)
    assert outcomes.count("hit") == 8, outcomes  # rounds two and three of the four mini questions
    wait_until(lambda: _logged(netra, len(outcomes)), "the workload reaching the ledger")
    return site


def stop_site(site: Site) -> None:
    """Stop `netra run` (it stops the admin app and the ledger process)."""
    site.netra.shutdown()
