"""The deferred lane with `netra run` and the official SDK: a policy from the CLI, 202, the result, the ledger rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from core.prices import compute_cost, load_seed
from core.usage import Usage
from tests.e2e.harness import Netra, make_netra

POLICY = "kind: batch\nname: reports can wait a day\nmatch: {tags: [report]}\ndefer: true\n"
DEFER = {"x-netra-defer": "24h", "x-netra-tags": "report"}
MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the quarter."}]
PRICES = load_seed()


@pytest.fixture
def netra(tmp_path: Path, fake_url: str) -> Iterator[Netra]:
    """Netra with a defer policy for tagged requests, a short window and poll, and one tenant."""
    instance = make_netra(tmp_path, fake_url, NETRA_DEFER_WINDOW="0.2", NETRA_DEFER_POLL_INTERVAL="0.2")
    instance.cli("migrate")
    instance.cli("tenants", "create", "acme", "--tier", "enterprise")
    instance.cli("tenants", "create", "globex", "--tier", "enterprise")
    instance.env["ACME_KEY"] = instance.cli("keys", "create", "--tenant", "acme").stdout.strip()
    instance.env["GLOBEX_KEY"] = instance.cli("keys", "create", "--tenant", "globex").stdout.strip()
    (tmp_path / "defer.yaml").write_text(POLICY)
    (policy_id,) = instance.cli("policies", "add", str(tmp_path / "defer.yaml")).stdout.split()
    instance.cli("policies", "activate", policy_id)
    instance.env["POLICY_ID"] = policy_id
    instance.start()
    yield instance
    if instance.proc is not None:
        instance.stop()


def client(netra: Netra, key: str = "ACME_KEY") -> openai.OpenAI:
    return openai.OpenAI(base_url=netra.url, api_key=netra.env[key], max_retries=0)


def wait_done(sdk: openai.OpenAI, deferred_id: str, seconds: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body: dict[str, Any] = sdk.get(f"/deferred/{deferred_id}", cast_to=httpx.Response).json()
        if body["status"] in ("completed", "failed", "expired"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{deferred_id} not done after {seconds}s")


def test_a_tagged_call_is_deferred_to_a_batch_and_priced_at_batch_rates(netra: Netra) -> None:
    with client(netra) as sdk, client(netra, "GLOBEX_KEY") as other:
        raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES,
                                                            extra_headers=DEFER)
        assert raw.status_code == 202
        accepted = raw.http_response.json()
        assert accepted["object"] == "netra.deferred" and accepted["status"] == "queued"
        with pytest.raises(openai.NotFoundError):
            other.get(f"/deferred/{accepted['id']}", cast_to=httpx.Response)
        done = wait_done(sdk, accepted["id"])
        # No tag: the policy does not match, so the header is ignored and the call is served at once.
        untagged_raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-netra-defer": "24h"}
        )
        untagged = untagged_raw.parse()
    assert done["status"] == "completed", done
    # The stored answer parses as the SDK's own ChatCompletion, like the synchronous (untagged: not deferred) one.
    answer = openai.types.chat.ChatCompletion.model_validate(done["response"])
    assert answer.choices[0].message.content == untagged.choices[0].message.content
    assert netra.stop() == 0
    rows = {row["request_id"]: row for row in map(json.loads, netra.cli("ledger", "export", "--format", "jsonl")
                                                  .stdout.splitlines())}
    row = rows[raw.http_response.headers["x-request-id"]]
    assert untagged_raw.status_code == 200
    assert answer.usage is not None
    usage = Usage(prompt_tokens=answer.usage.prompt_tokens, completion_tokens=answer.usage.completion_tokens)
    price = PRICES.price_for("gpt-4o-mini")
    assert (row["status"], row["savings_kind"], row["policy_id"]) == ("ok", "batch", netra.env["POLICY_ID"])
    assert Decimal(row["cost_usd"]) == compute_cost(usage, price, batch=True).usd
    assert Decimal(row["baseline_cost_usd"]) == compute_cost(usage, price).usd
    deferred_rid, untagged_rid = raw.http_response.headers["x-request-id"], untagged_raw.headers["x-request-id"]
    assert set(rows) == {deferred_rid, untagged_rid}  # the 202 exchange wrote no row of its own
    assert rows[untagged_rid]["savings_kind"] == "" and rows[untagged_rid]["status"] == "ok"
