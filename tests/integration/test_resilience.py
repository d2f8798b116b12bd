"""Resilience through the whole gateway: retries within a budget, fallbacks before the first byte, circuit breakers.

Failures are switched on per upstream model at the fake provider (`fake.fail`); `fake.calls(model)` counts what
reached it, so "no provider call" is measured where the provider is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from core.settings import Settings
from tests.fake_upstream import FakeUpstream
from tests.integration.harness import MESSAGES, sample
from tests.integration.routing_harness import RoutedGateway, routed_gateway, routing_settings
from tests.integration.test_ledger_outcomes import read_rows


async def post(gateway: RoutedGateway, model: str, request_id: str, **fields: Any) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, **fields}
    headers = {**gateway.auth(), "x-request-id": request_id}
    return await gateway.http.post("/v1/chat/completions", json=body, headers=headers)


def events(response: httpx.Response) -> list[Any]:
    payloads = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [p if p == "[DONE]" else orjson.loads(p) for p in payloads]


@pytest.mark.parametrize("mode", [500, 503, 429, "reset"])
async def test_a_failing_primary_falls_back_and_the_client_sees_one_clean_answer(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream, mode: int | str
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream, upstream_attempts=2)
    fake_upstream.fail("primary-x", mode)
    async with routed_gateway(configured, fake_upstream) as gateway:
        raw = await gateway.client.chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES, extra_headers={"x-request-id": "fb-1"},
        )
    assert raw.http_response.status_code == 200 and raw.headers["x-netra-model"] == "backup-x"
    assert raw.parse().choices[0].message.content
    assert fake_upstream.calls("backup-x") == 1
    row = read_rows(configured)["fb-1"]
    assert (row["status"], row["requested_model"], row["served_model"]) == ("ok", "primary", "backup-x")
    assert row["upstream_attempts"] == fake_upstream.calls("primary-x") + 1
    assert row["savings_kind"] == "route" and row["savings_usd"] > 0  # the backup is priced at half the primary


async def test_a_rate_limited_primary_with_a_long_retry_after_falls_back_at_once(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream, upstream_attempts=3)
    fake_upstream.fail("primary-x", 429, retry_after=30)
    async with routed_gateway(configured, fake_upstream) as gateway:
        response = await post(gateway, "primary", "rl-1")
    assert response.status_code == 200 and response.headers["x-netra-model"] == "backup-x"
    assert fake_upstream.calls("primary-x") == 1  # no waiting 30 s for a model another can stand in for


async def test_a_request_the_provider_refuses_is_not_retried_nor_sent_elsewhere(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream)
    fake_upstream.fail("primary-x", 400)
    async with routed_gateway(configured, fake_upstream) as gateway:
        response = await post(gateway, "primary", "bad-1")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert (fake_upstream.calls("primary-x"), fake_upstream.calls("backup-x")) == (1, 0)


async def test_a_fallback_to_another_provider_is_translated(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream, upstream_attempts=1)
    fake_upstream.fail("to-claude-x", 502)
    async with routed_gateway(configured, fake_upstream) as gateway:
        reply = await gateway.client.chat.completions.create(model="to-claude", messages=MESSAGES)
    assert reply.object == "chat.completion" and reply.choices[0].message.content
    assert fake_upstream.requests[-1].path == "/v1/messages"


async def test_a_stream_falls_back_before_its_first_byte(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream, upstream_attempts=1)
    fake_upstream.fail("primary-x", 503)
    async with routed_gateway(configured, fake_upstream) as gateway:
        stream = await gateway.client.chat.completions.create(model="primary", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text and fake_upstream.calls("backup-x") == 1


async def test_a_stream_never_falls_back_after_its_first_byte(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream)
    fake_upstream.fail("primary-x", "midstream")
    async with routed_gateway(configured, fake_upstream) as gateway:
        response = await post(gateway, "primary", "mid-1", stream=True)
    got = events(response)
    assert response.status_code == 200
    assert got[0]["choices"][0]["delta"]  # the first chunk reached the client ...
    assert got[-2]["error"]["code"] == "upstream_error" and got[-1] == "[DONE]"  # ... so the failure is in-band
    assert (fake_upstream.calls("primary-x"), fake_upstream.calls("backup-x")) == (1, 0)
    assert read_rows(configured)["mid-1"]["status"] == "upstream_error"


async def test_an_open_breaker_makes_no_provider_call_then_probes_and_closes(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(
        settings, tmp_path, fake_upstream, upstream_attempts=1, breaker_failures=2, breaker_open_seconds=0.5,
    )
    fake_upstream.fail("solo-x", 500)
    async with routed_gateway(configured, fake_upstream) as gateway:
        assert [(await post(gateway, "solo", f"b-{n}")).status_code for n in range(2)] == [502, 502]
        refused = await post(gateway, "solo", "b-open")
        state_open = sample(await gateway.metrics(), "netra_breaker_state", "netra_breaker_state",
                            deployment="fake/solo-x")
        assert fake_upstream.calls("solo-x") == 2  # the open breaker answered without calling the provider
        fake_upstream.heal("solo-x")
        await asyncio.sleep(0.6)  # the breaker's open time passes: the next call is its probe
        probe = await post(gateway, "solo", "b-probe")
        state_after = sample(await gateway.metrics(), "netra_breaker_state", "netra_breaker_state",
                             deployment="fake/solo-x")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "upstream_unavailable"
    assert int(refused.headers["retry-after"]) >= 1
    assert (state_open, probe.status_code, state_after) == (2.0, 200, 0.0)
    rows = read_rows(configured)
    assert (rows["b-open"]["status"], rows["b-open"]["upstream_attempts"]) == ("upstream_error", 0)


async def test_an_open_breaker_sends_traffic_to_the_fallbacks(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream, upstream_attempts=1, breaker_failures=1)
    fake_upstream.fail("primary-x", 500)
    async with routed_gateway(configured, fake_upstream) as gateway:
        answers = [(await post(gateway, "primary", f"o-{n}")).headers["x-netra-model"] for n in range(3)]
    assert answers == ["backup-x"] * 3
    assert fake_upstream.calls("primary-x") == 1


async def test_retries_stay_within_the_budget_under_a_failure_storm(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    requests = 30
    configured = routing_settings(
        settings, tmp_path, fake_upstream, upstream_attempts=3, breaker_failures=10_000, retry_budget=0.2,
    )
    fake_upstream.fail("solo-x", 500)
    async with routed_gateway(configured, fake_upstream) as gateway:
        statuses = [(await post(gateway, "solo", f"s-{n}")).status_code for n in range(requests)]
        refused = sample(await gateway.metrics(), "netra_retry_budget_exhausted", "netra_retry_budget_exhausted_total",
                         deployment="fake/solo-x")
    assert statuses == [502] * requests
    retries = fake_upstream.calls("solo-x") - requests
    # Without a budget this storm would make 2 retries a request (60); the budget allows 3 + 20% of requests.
    assert 0 < retries <= 3 + 0.2 * requests
    assert refused is not None and refused > 0


@pytest.mark.parametrize(("retry_after", "expected"), [(None, None), (7, "7")])
async def test_an_overloaded_provider_is_a_503_with_retry_after(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream, retry_after: int | None, expected: str | None
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream, upstream_attempts=1)
    fake_upstream.fail("solo-x", 429, retry_after=retry_after)
    async with routed_gateway(configured, fake_upstream) as gateway:
        response = await post(gateway, "solo", "o-1")
    assert response.status_code == 503 and response.json()["error"]["code"] == "upstream_overloaded"
    # The provider's own hint passes through; without one the gateway still says when to retry.
    assert response.headers["retry-after"] == expected if expected else int(response.headers["retry-after"]) >= 1


async def test_the_request_deadline_bounds_every_attempt(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream, request_deadline=0.3)
    fake_upstream.fail("primary-x", "hang")
    async with routed_gateway(configured, fake_upstream) as gateway:
        response = await post(gateway, "primary", "d-1")
    assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"
    assert "deadline" in response.json()["error"]["message"]
    assert fake_upstream.calls("backup-x") == 0  # no time was left for the fallback
