"""The whole gateway in-process under uvicorn, driven over HTTP, with the fake provider behind it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from core.db import create_engine
from core.settings import Settings
from tests.fake_upstream import FakeUpstream
from tests.fake_upstream_behaviour import DEFAULT_REPLY
from tests.integration.conftest import REDIS_URL
from tests.integration.harness import (
    MAX_BODY,
    MESSAGES,
    Gateway,
    gateway_settings,
    running_gateway,
    sample,
    wait_for,
)
from tests.unit.helpers import assert_envelope, closed_port

# --- serving ----------------------------------------------------------------------------------------------------------


async def test_chat_call_through_the_gateway(gateway: Gateway) -> None:
    response = await gateway.chat(temperature=0.3, foo={"bar": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == DEFAULT_REPLY
    assert body["object"] == "chat.completion"
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["x-netra-model"] == "gpt-4o-mini"
    assert response.headers["x-netra-cache"] == "bypass"
    (received,) = gateway.fake.requests
    assert received.json == {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.3, "foo": {"bar": 1}}
    assert received.headers["authorization"] == "Bearer sk-fake-upstream-key"


async def test_the_clients_request_id_is_echoed(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={**gateway.auth(), "x-request-id": "client-trace-42"},
    )
    assert response.headers["x-request-id"] == "client-trace-42"


async def test_an_unusable_client_request_id_is_replaced(gateway: Gateway) -> None:
    response = await gateway.http.get("/health", headers={"x-request-id": "x" * 500})
    assert response.headers["x-request-id"].startswith("req_")


async def test_free_tier_responses_carry_rate_limit_headers(gateway: Gateway) -> None:
    response = await gateway.chat(who="tiny")
    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit-requests"] == "100"
    assert response.headers["x-ratelimit-remaining-requests"] == "99"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")


async def test_streaming_chat_through_the_gateway(gateway: Gateway) -> None:
    response = await gateway.chat(stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-netra-model"] == "gpt-4o-mini"
    assert response.headers["x-request-id"]
    events = [e for e in response.content.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == DEFAULT_REPLY
    assert b'"usage"' not in response.content


async def test_anthropic_model_through_the_gateway(gateway: Gateway) -> None:
    response = await gateway.chat("claude")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == DEFAULT_REPLY
    assert response.json()["model"] == "claude"
    assert gateway.fake.requests[0].headers["x-api-key"] == "sk-ant-fake-key"


async def test_embeddings_through_the_gateway(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b"]}, headers=gateway.auth()
    )
    assert response.status_code == 200
    assert len(response.json()["data"]) == 2


async def test_flaky_upstream_succeeds_thanks_to_the_retry(gateway: Gateway) -> None:
    response = await gateway.chat("flaky")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == DEFAULT_REPLY
    assert len(gateway.fake.requests) == 2


async def test_midstream_failure_reaches_the_client_in_band(gateway: Gateway) -> None:
    response = await gateway.chat("midstream", stream=True)
    assert response.status_code == 200
    events = [e for e in response.content.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    assert_envelope(orjson.loads(events[-2].removeprefix(b"data: ")), type="server_error", code="upstream_error")
    assert len(events) > 2  # content went out before the failure


async def test_client_disconnect_cancels_the_upstream_call(gateway: Gateway) -> None:
    body = {"model": "drip", "messages": MESSAGES, "stream": True}
    async with gateway.http.stream("POST", "/v1/chat/completions", json=body, headers=gateway.auth()) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            assert chunk.startswith(b"data: ")
            break
    assert await wait_for(lambda: gateway.fake.cancelled_streams == 1)
    assert gateway.fake.completed_streams == 0

    async def cancelled_is_counted() -> bool:
        families = await gateway.metrics()
        return sample(families, "netra_requests", "netra_requests_total", route="chat/completions", model="drip",
                      status="499") == 1.0

    for _ in range(100):
        if await cancelled_is_counted():
            break
        await asyncio.sleep(0.02)
    assert await cancelled_is_counted()


# --- the error table --------------------------------------------------------------------------------------------------

CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}
# (id, method, path, caller, body, status, type, code, param)
ERRORS: list[tuple[str, str, str, str | None, Any, int, str, str | None, str | None]] = [
    ("not-json", "POST", "/v1/chat/completions", "acme", b"{not json", 400, "invalid_request_error",
     "invalid_json", None),
    ("not-an-object", "POST", "/v1/chat/completions", "acme", b"[1, 2]", 400, "invalid_request_error",
     "invalid_json", None),
    ("invalid-utf8", "POST", "/v1/chat/completions", "acme", b'{"model": "\xff"}', 400, "invalid_request_error",
     "invalid_json", None),
    ("too-deep", "POST", "/v1/chat/completions", "acme", b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}", 400,
     "invalid_request_error", "invalid_json", None),
    ("nested-300", "POST", "/v1/chat/completions", "acme", b'{"model": "gpt-4o-mini", "messages": [], "x": '
     + b"[" * 300 + b"]" * 300 + b"}", 400, "invalid_request_error", "invalid_json", None),
    ("missing-messages", "POST", "/v1/chat/completions", "acme", {"model": "gpt-4o-mini"}, 400,
     "invalid_request_error", "missing_required_parameter", "messages"),
    ("wrong-type", "POST", "/v1/chat/completions", "acme", {**CHAT, "stream": "yes"}, 400,
     "invalid_request_error", "invalid_type", "stream"),
    ("missing-key", "POST", "/v1/chat/completions", None, CHAT, 401, "invalid_request_error",
     "missing_api_key", None),
    ("invalid-key", "POST", "/v1/chat/completions", "bogus", CHAT, 401, "invalid_request_error",
     "invalid_api_key", None),
    ("suspended", "POST", "/v1/chat/completions", "frozen", CHAT, 403, "permission_error", "tenant_suspended",
     None),
    ("unknown-model", "POST", "/v1/chat/completions", "acme", {**CHAT, "model": "gpt-9"}, 404,
     "invalid_request_error", "model_not_found", "model"),
    ("model-not-allowed", "POST", "/v1/chat/completions", "limited", {**CHAT, "model": "gpt-4o"}, 404,
     "invalid_request_error", "model_not_found", "model"),
    ("unknown-path", "POST", "/v1/nothing-here", "acme", CHAT, 404, "invalid_request_error", "not_found", None),
    ("wrong-method", "GET", "/v1/chat/completions", "acme", None, 405, "invalid_request_error",
     "method_not_allowed", None),
    ("too-large", "POST", "/v1/chat/completions", "acme", b"x" * (MAX_BODY + 1), 413, "invalid_request_error",
     "request_too_large", None),
    ("provider-rejects", "POST", "/v1/chat/completions", "acme", {**CHAT, "model": "rejected"}, 400,
     "invalid_request_error", "invalid_value", "messages"),
    ("upstream-500", "POST", "/v1/chat/completions", "acme", {**CHAT, "model": "broken"}, 502, "server_error",
     "upstream_error", None),
    ("upstream-401", "POST", "/v1/chat/completions", "acme", {**CHAT, "model": "bad-credential"}, 502,
     "server_error", "upstream_auth_error", None),
    ("upstream-429", "POST", "/v1/chat/completions", "acme", {**CHAT, "model": "busy"}, 503, "server_error",
     "upstream_overloaded", None),
    ("upstream-down", "POST", "/v1/chat/completions", "acme", {**CHAT, "model": "unreachable"}, 503,
     "server_error", "upstream_unavailable", None),
    ("upstream-slow", "POST", "/v1/chat/completions", "acme", {**CHAT, "model": "slow"}, 504, "server_error",
     "upstream_timeout", None),
    ("upstream-slow-stream", "POST", "/v1/chat/completions", "acme", {**CHAT, "model": "slow", "stream": True},
     504, "server_error", "upstream_timeout", None),
]


@pytest.mark.parametrize(("method", "path", "caller", "body", "status", "etype", "code", "param"),
                         [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
async def test_error_envelope(
    gateway: Gateway, method: str, path: str, caller: str | None, body: Any, status: int, etype: str,
    code: str | None, param: str | None,
) -> None:
    headers = {"x-request-id": "trace-err-1"}
    if caller == "bogus":
        headers["authorization"] = "Bearer nk-this-key-does-not-exist"
    elif caller is not None:
        headers.update(gateway.auth(caller))
    content = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    response = await gateway.http.request(method, path, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"] == "trace-err-1"
    assert_envelope(response.json(), type=etype, code=code, param=param)
    if status in (429, 503):
        assert int(response.headers["retry-after"]) >= 1
    if status == 405:
        assert "POST" in response.headers["allow"]


async def test_errors_without_a_client_request_id_get_one(gateway: Gateway) -> None:
    response = await gateway.http.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    assert response.headers["x-request-id"].startswith("req_")


async def test_tenant_rate_limit_is_429_with_retry_after(gateway: Gateway) -> None:
    for _ in range(99):  # refused bodies count: the limit is checked before the body is read
        spent = await gateway.http.post("/v1/chat/completions", content=b"{", headers=gateway.auth("tiny"))
        assert spent.status_code == 400
    last_allowed = await gateway.chat(who="tiny")
    assert last_allowed.status_code == 200
    assert last_allowed.headers["x-ratelimit-remaining-requests"] == "0"
    refused = await gateway.chat(who="tiny")
    assert refused.status_code == 429
    assert_envelope(refused.json(), type="rate_limit_error", code="rate_limit_exceeded")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-request-id"]
    assert len(gateway.fake.requests) == 1  # the refused call never reached the provider
    assert (await gateway.chat(who="acme")).status_code == 200  # other tenants are not affected


# --- information endpoints --------------------------------------------------------------------------------------------


async def test_models_lists_what_the_key_may_use(gateway: Gateway) -> None:
    everything = (await gateway.http.get("/v1/models", headers=gateway.auth())).json()
    assert everything["object"] == "list"
    names = {m["id"] for m in everything["data"]}
    assert {"gpt-4o-mini", "gpt-4o", "claude", "text-embedding-3-small"} <= names
    assert all(m["object"] == "model" for m in everything["data"])

    limited = (await gateway.http.get("/v1/models", headers=gateway.auth("limited"))).json()
    assert [m["id"] for m in limited["data"]] == ["gpt-4o-mini"]

    one = await gateway.http.get("/v1/models/gpt-4o", headers=gateway.auth())
    assert (one.status_code, one.json()["id"], one.json()["owned_by"]) == (200, "gpt-4o", "fake")
    hidden = await gateway.http.get("/v1/models/gpt-4o", headers=gateway.auth("limited"))
    assert hidden.status_code == 404
    assert_envelope(hidden.json(), type="invalid_request_error", code="model_not_found", param="model")
    anonymous = await gateway.http.get("/v1/models")
    assert anonymous.status_code == 401


async def test_health_and_readiness(gateway: Gateway) -> None:
    health = await gateway.http.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await gateway.http.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "clickhouse": "ok", "ledger": "ok", "providers": "ok"},
    }


async def test_metrics_expose_requests_and_histograms(gateway: Gateway) -> None:
    assert (await gateway.chat()).status_code == 200
    assert (await gateway.chat(stream=True)).status_code == 200
    assert (await gateway.chat("gpt-9")).status_code == 404
    families = await gateway.metrics()
    ok = sample(families, "netra_requests", "netra_requests_total", route="chat/completions", model="gpt-4o-mini",
                status="200")
    assert ok == 2.0
    not_found = [s for s in families["netra_requests"].samples
                 if s.name == "netra_requests_total" and s.labels["status"] == "404"]
    assert [s.value for s in not_found] == [1.0]
    for histogram in ("netra_request_duration_seconds", "netra_upstream_duration_seconds",
                      "netra_time_to_first_token_seconds"):
        assert families[histogram].type == "histogram"
    assert sample(families, "netra_request_duration_seconds", "netra_request_duration_seconds_count",
                  route="chat/completions") == 3.0
    assert sample(families, "netra_upstream_duration_seconds", "netra_upstream_duration_seconds_count",
                  provider="fake") == 2.0
    assert sample(families, "netra_time_to_first_token_seconds", "netra_time_to_first_token_seconds_count",
                  model="gpt-4o-mini") == 1.0
    assert sample(families, "netra_tokens", "netra_tokens_total", model="gpt-4o-mini", kind="completion")


async def test_unknown_paths_share_one_metrics_label(gateway: Gateway) -> None:
    for path in ("/a", "/b/c", "/v1/whatever"):
        await gateway.http.get(path)
    families = await gateway.metrics()
    routes = {s.labels["route"] for s in families["netra_requests"].samples if s.name == "netra_requests_total"}
    assert routes == {"other"}


# --- the Netra key stays home -----------------------------------------------------------------------------------------


async def test_no_netra_key_ever_reaches_the_provider(gateway: Gateway) -> None:
    key = gateway.keys["acme"]
    leaky = {**gateway.auth(), "x-api-key": key, "api-key": key, "openai-organization": "org-1"}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    calls = [
        ("/v1/chat/completions", body),
        ("/v1/chat/completions", {**body, "stream": True}),
        ("/v1/chat/completions", {**body, "model": "claude"}),
        ("/v1/chat/completions", {**body, "model": "claude", "stream": True}),
        ("/v1/chat/completions", {**body, "model": "flaky"}),
        ("/v1/chat/completions", {**body, "model": "broken"}),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}),
        ("/v1/responses", {"model": "gpt-4o", "input": "x"}),
    ]
    for path, payload in calls:
        await gateway.http.post(path, json=payload, headers=leaky)
    received = gateway.fake.requests
    assert len(received) >= len(calls)
    secret = key.encode()
    for request in received:
        assert secret not in request.body
        for name, value in request.headers.items():
            assert key not in value, name
            assert "nk-" not in value, name


# --- degraded stores --------------------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_gateway_with_redis_counts_limits_in_redis(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream, redis_client: Redis
) -> None:
    configured = gateway_settings(settings, tmp_path, fake_upstream, redis_url=REDIS_URL)
    async with running_gateway(configured, fake_upstream) as gateway:
        tenant = gateway.tenant_ids["tiny"]
        try:
            assert (await gateway.chat(who="tiny")).status_code == 200
            ready = (await gateway.http.get("/health/ready")).json()
            keys = [k async for k in redis_client.scan_iter(match=f"netra:rl:{{{tenant}}}:*")]
            assert ready["checks"]["redis"] == "ok"
            assert len(keys) == 1 and int(await redis_client.get(keys[0])) == 1
        finally:
            stale = [k async for k in redis_client.scan_iter(match=f"netra:rl:{{{tenant}}}:*")]
            if stale:
                await redis_client.delete(*stale)


async def test_gateway_with_redis_down_still_serves(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = gateway_settings(settings, tmp_path, fake_upstream, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    async with running_gateway(configured, fake_upstream) as gateway:
        response = await gateway.chat(who="tiny")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining-requests"] == "99"
        ready = await gateway.http.get("/health/ready")
        assert ready.status_code == 200  # degraded, still ready: an orchestrator must not pull a serving gateway
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["redis"].startswith("degraded: redis unreachable")
        assert ready.json()["checks"]["database"] == "ok"


async def test_database_down_serves_known_keys_and_refuses_unknown_ones(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = gateway_settings(settings, tmp_path, fake_upstream, key_cache_ttl=0.05)
    async with running_gateway(configured, fake_upstream) as gateway:
        assert (await gateway.chat()).status_code == 200  # the key is now known
        engine = create_engine(configured)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DROP TABLE api_keys"))
        finally:
            await engine.dispose()
        await asyncio.sleep(0.1)  # the cached entry has expired: the gateway must ask the database again
        assert (await gateway.chat()).status_code == 200
        unknown = await gateway.http.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer nk-never-seen-before-123"}
        )
        assert unknown.status_code == 503
        assert_envelope(unknown.json(), type="server_error", code="auth_unavailable")
        assert int(unknown.headers["retry-after"]) >= 1
