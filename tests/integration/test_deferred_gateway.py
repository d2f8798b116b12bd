"""The deferred lane through the whole gateway: x-netra-defer → 202, a provider batch at the fake, the result by GET.

The fake provider runs batches with its own answer functions (model-name behaviours apply to each line); the
gateway's lane submits and polls with small window and poll settings. The ledger is read back from chDB.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from core.prices import compute_cost, load_seed
from core.settings import Settings
from core.usage import Usage
from tests.fake_upstream import FakeUpstream
from tests.integration.harness import MESSAGES, Gateway, gateway_settings, make_tenants, serve
from tests.integration.test_cache_gateway import activate_policies
from tests.integration.test_ledger_outcomes import read_rows
from tests.unit.helpers import assert_envelope

DEFER_POLICY = "kind: batch\nname: nightly jobs may wait\ndefer: true\n"
NO_DEFER_POLICY = "kind: batch\nname: micro-batching only\n"
DEFER = {"x-netra-defer": "24h"}
PRICES = load_seed()


def lane_settings(settings: Settings, tmp_path: Path, fake: FakeUpstream) -> Settings:
    return gateway_settings(
        settings, tmp_path, fake, defer_window=0.1, defer_poll_interval=0.1, policy_poll_interval=0.05,
    )


@asynccontextmanager
async def started(
    settings: Settings, fake: FakeUpstream, keys: dict[str, str], ids: dict[str, str]
) -> AsyncIterator[Gateway]:
    async with serve(settings, {"FAKE_OPENAI_KEY": fake.api_key}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield Gateway(http, fake, keys, ids)


@pytest.fixture
def policy() -> str | None:
    return DEFER_POLICY


@pytest.fixture
async def prepared(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream, policy: str | None
) -> tuple[Settings, dict[str, str], dict[str, str]]:
    """Settings with tenants made and `policy` active (the gateway is started by the test or `gateway`)."""
    configured = lane_settings(settings, tmp_path, fake_upstream)
    keys, ids = await make_tenants(configured)
    if policy is not None:
        await activate_policies(configured, policy)
    return configured, keys, ids


@pytest.fixture
async def gateway(
    prepared: tuple[Settings, dict[str, str], dict[str, str]], fake_upstream: FakeUpstream
) -> AsyncIterator[Gateway]:
    settings, keys, ids = prepared
    async with started(settings, fake_upstream, keys, ids) as running:
        yield running


async def defer(gateway: Gateway, model: str = "gpt-4o-mini", who: str = "acme", **fields: Any) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, **fields}
    return await gateway.http.post("/v1/chat/completions", json=body, headers={**gateway.auth(who), **DEFER})


async def fetch(gateway: Gateway, deferred_id: str, who: str = "acme") -> httpx.Response:
    return await gateway.http.get(f"/v1/deferred/{deferred_id}", headers=gateway.auth(who))


async def until(gateway: Gateway, deferred_id: str, statuses: set[str], seconds: float = 20.0) -> dict[str, Any]:
    """The GET body once the request reaches one of `statuses`."""
    body: dict[str, Any] = {}
    for _ in range(int(seconds / 0.05)):
        response = await fetch(gateway, deferred_id)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {body.get('status')} after {seconds}s")


def check_accepted(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"id", "object", "status", "created_at"}
    assert body["id"].startswith("def_") and body["object"] == "netra.deferred" and body["status"] == "queued"
    assert isinstance(body["created_at"], int)
    assert response.headers["location"] == f"/v1/deferred/{body['id']}"
    return str(body["id"])


def batch_paths(fake: FakeUpstream) -> list[str]:
    return [r.path for r in fake.requests if "batches" in r.path or "files" in r.path]


async def test_a_deferred_call_is_answered_202_and_completes_like_a_synchronous_one(gateway: Gateway) -> None:
    deferred_id = check_accepted(await defer(gateway, temperature=0))
    done = await until(gateway, deferred_id, {"completed", "failed", "expired"})
    assert done["status"] == "completed", done
    assert set(done) == {"id", "object", "status", "created_at", "completed_at", "response"}
    assert done["completed_at"] >= done["created_at"]
    sync = await gateway.chat(temperature=0)
    assert sync.status_code == 200
    answer, expected = done["response"], sync.json()
    assert set(answer) == set(expected) and answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == expected["choices"][0]["message"]
    assert set(answer["usage"]) == set(expected["usage"])
    # The deferred call went as a batch (a file, then a batch): the only chat call upstream is the synchronous one.
    assert [r.path for r in gateway.fake.requests if r.path.endswith("chat/completions")] == ["/v1/chat/completions"]
    assert "/v1/files" in batch_paths(gateway.fake) and "/v1/batches" in batch_paths(gateway.fake)


async def test_embeddings_are_deferred_too(gateway: Gateway) -> None:
    body = {"model": "text-embedding-3-small", "input": ["one", "two"]}
    response = await gateway.http.post("/v1/embeddings", json=body, headers={**gateway.auth(), **DEFER})
    done = await until(gateway, check_accepted(response), {"completed", "failed", "expired"})
    assert done["status"] == "completed", done
    assert done["response"]["object"] == "list" and len(done["response"]["data"]) == 2


async def test_another_tenant_and_an_unknown_id_get_404(gateway: Gateway) -> None:
    deferred_id = check_accepted(await defer(gateway))
    for who, wanted in (("tiny", deferred_id), ("acme", "def_000000000000000000000000"), ("acme", "x" * 500)):
        response = await fetch(gateway, wanted, who)
        assert response.status_code == 404
        error = assert_envelope(response.json(), type="invalid_request_error", code="not_found", param="id")
        assert error["message"].startswith("No deferred request with id ")
    no_key = await gateway.http.get(f"/v1/deferred/{deferred_id}")
    assert no_key.status_code == 401
    assert (await fetch(gateway, deferred_id)).json()["status"] in {"queued", "submitted", "completed"}


@pytest.mark.parametrize("policy", [None, NO_DEFER_POLICY])
async def test_without_a_defer_policy_the_header_is_ignored(gateway: Gateway) -> None:
    response = await defer(gateway)
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    assert batch_paths(gateway.fake) == []


async def test_a_short_delay_or_a_stream_is_refused(gateway: Gateway) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    short = await gateway.http.post(
        "/v1/chat/completions", json=body, headers={**gateway.auth(), "x-netra-defer": "1h"}
    )
    assert short.status_code == 400
    assert_envelope(short.json(), type="invalid_request_error", code="invalid_value", param="x-netra-defer")
    streamed = await defer(gateway, stream=True)
    assert streamed.status_code == 400
    assert_envelope(streamed.json(), type="invalid_request_error", code="invalid_value", param="stream")


async def test_an_anthropic_deployment_completes_through_message_batches(gateway: Gateway) -> None:
    deferred_id = check_accepted(await defer(gateway, model="claude"))
    done = await until(gateway, deferred_id, {"completed", "failed", "expired"})
    assert done["status"] == "completed", done
    sync = (await gateway.chat(model="claude")).json()
    assert set(done["response"]) == set(sync) and done["response"]["model"] == "claude"
    assert done["response"]["choices"][0]["message"] == sync["choices"][0]["message"]
    assert "/v1/messages/batches" in batch_paths(gateway.fake)


async def test_a_failed_line_yields_the_per_request_error(gateway: Gateway) -> None:
    deferred_id = check_accepted(await defer(gateway, model="rejected"))
    done = await until(gateway, deferred_id, {"completed", "failed", "expired"})
    sync = await gateway.chat(model="rejected")
    assert done["status"] == "failed" and set(done) == {"id", "object", "status", "created_at", "completed_at", "error"}
    assert done["error"] == sync.json()["error"]  # the error a synchronous call gets


async def test_the_official_sdk_sends_and_fetches_a_deferred_call(gateway: Gateway) -> None:
    client = openai.AsyncOpenAI(base_url=f"{gateway.http.base_url}/v1", api_key=gateway.keys["acme"], max_retries=0)
    async with client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there!"}], extra_headers=DEFER,
        )
        assert raw.status_code == 202
        deferred_id = raw.http_response.json()["id"]
        await until(gateway, deferred_id, {"completed"})
        fetched = await client.get(f"/deferred/{deferred_id}", cast_to=httpx.Response)
    assert fetched.status_code == 200 and fetched.json()["response"]["object"] == "chat.completion"


async def test_a_restart_between_submit_and_completion_still_completes_with_one_ledger_row(
    prepared: tuple[Settings, dict[str, str], dict[str, str]], fake_upstream: FakeUpstream
) -> None:
    settings, keys, ids = prepared
    fake_upstream.hold_batches()
    async with started(settings, fake_upstream, keys, ids) as first:
        response = await defer(first, temperature=0)
        deferred_id = check_accepted(response)
        request_id = response.headers["x-request-id"]
        await until(first, deferred_id, {"submitted"})
    assert len(fake_upstream.batches) == 1
    fake_upstream.complete_batches()
    async with started(settings, fake_upstream, keys, ids) as second:
        done = await until(second, deferred_id, {"completed", "failed", "expired"})
        sync = await second.chat(temperature=0)
    assert done["status"] == "completed", done
    assert len(fake_upstream.batches) == 1  # the new process adopted the job: nothing submitted twice
    rows = read_rows(settings)
    assert_batch_priced(rows[request_id], done["response"]["usage"], ids["acme"])
    assert rows[sync.headers["x-request-id"]]["savings_kind"] == ""


def assert_batch_priced(row: dict[str, Any], usage: dict[str, Any], tenant_id: str) -> None:
    """One ledger row for the deferred call: its tokens at batch prices, the baseline at the synchronous price."""
    tokens = Usage(prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
                   cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
    price = PRICES.price_for("gpt-4o-mini")
    assert (row["status"], row["http_status"], row["savings_kind"], row["tenant_id"]) == ("ok", 200, "batch", tenant_id)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (tokens.prompt_tokens, tokens.completion_tokens)
    assert row["cost_usd"] == compute_cost(tokens, price, batch=True).usd
    assert row["baseline_cost_usd"] == compute_cost(tokens, price).usd
    assert row["savings_usd"] == row["baseline_cost_usd"] - row["cost_usd"] > Decimal(0)
    assert row["policy_id"] != "" and row["policy_version"] == 1


async def test_the_ledger_row_comes_with_the_result_and_the_202_writes_none(
    prepared: tuple[Settings, dict[str, str], dict[str, str]], fake_upstream: FakeUpstream
) -> None:
    settings, keys, ids = prepared
    async with started(settings, fake_upstream, keys, ids) as gateway:
        refused = await defer(gateway, model="rejected")
        accepted = await defer(gateway)
        done = await until(gateway, check_accepted(accepted), {"completed"})
        failed_id = check_accepted(refused)
        await until(gateway, failed_id, {"failed"})
    rows = read_rows(settings)
    assert set(rows) == {accepted.headers["x-request-id"], refused.headers["x-request-id"]}
    assert_batch_priced(rows[accepted.headers["x-request-id"]], done["response"]["usage"], ids["acme"])
    bad = rows[refused.headers["x-request-id"]]
    assert (bad["status"], bad["http_status"], bad["savings_kind"], bad["cost_usd"]) == (
        "upstream_rejected", 400, "", Decimal(0)
    )
