"""The response cache and coalescing through the whole gateway: a policy in the database, the fake provider behind.

Provider calls are counted at the fake (`fake.requests`); what the client sees is the body, its stream and the
`x-netra-cache` header.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from core.db import create_engine, create_sessionmaker
from core.settings import Settings
from policies.loader import load_policies
from policies.store import activate_policy, add_policies
from tests.fake_upstream import FakeUpstream
from tests.integration.conftest import REDIS_URL
from tests.integration.harness import MESSAGES, Gateway, gateway_settings, make_tenants, sample, serve
from tests.integration.redis_door import RedisDoor
from tests.integration.test_ledger_outcomes import read_rows

ANY_REQUEST = "kind: cache\nname: every deterministic request\nttl: 1h\n"
NONDETERMINISTIC = "kind: cache\nname: everything\nttl: 1h\ncache_nondeterministic: true\n"
ACME_ONLY = "kind: cache\nname: acme\nmatch: {tenants: [acme]}\nttl: 1h\n"
PINNED: dict[str, Any] = {"temperature": 0}


async def activate_policies(settings: Settings, text: str) -> list[str]:
    """Store the policies of a YAML text and activate them, as `netra policies add` + `activate` do."""
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            ids = await add_policies(session, load_policies(text, "test.yaml"), "human:test")
        for pid in ids:
            async with sessions() as session:
                await activate_policy(session, pid, "human:test")
    finally:
        await engine.dispose()
    return ids


@asynccontextmanager
async def cached_gateway(
    settings: Settings, fake: FakeUpstream, policy: str | None, policy_ids: list[str] | None = None
) -> AsyncIterator[Gateway]:
    """A gateway started with `policy` active (loaded at start-up: no wait for a reload); its ids go to `policy_ids`."""
    keys, ids = await make_tenants(settings)
    if policy is not None:
        (policy_ids if policy_ids is not None else []).extend(await activate_policies(settings, policy))
    async with serve(settings, {"FAKE_OPENAI_KEY": fake.api_key}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield Gateway(http, fake, keys, ids)


@pytest.fixture
def policy() -> str | None:
    """The policy active in `gateway` (tests override it with parametrize)."""
    return ANY_REQUEST


@pytest.fixture
async def gateway(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream, policy: str | None
) -> AsyncIterator[Gateway]:
    configured = gateway_settings(settings, tmp_path, fake_upstream, policy_poll_interval=0.05)
    async with cached_gateway(configured, fake_upstream, policy) as running:
        yield running


async def chat(
    gateway: Gateway, who: str = "acme", headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, **fields}
    return await gateway.http.post("/v1/chat/completions", json=body, headers={**gateway.auth(who), **(headers or {})})


def events(response: httpx.Response) -> list[Any]:
    """The data payloads of an SSE body, JSON-decoded ([DONE] kept as the string)."""
    payloads = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    return [p if p == "[DONE]" else orjson.loads(p) for p in payloads]


def streamed_text(response: httpx.Response) -> str:
    chunks = [e for e in events(response) if isinstance(e, dict)]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def outcome(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["x-netra-cache"]


def provider_calls(gateway: Gateway) -> int:
    return len(gateway.fake.requests)


# --- hits -------------------------------------------------------------------------------------------------------------


async def test_a_repeated_deterministic_request_is_a_hit_the_second_time(gateway: Gateway) -> None:
    first = await chat(gateway, **PINNED)
    second = await chat(gateway, **PINNED)
    assert (outcome(first), outcome(second)) == ("miss", "hit")
    assert second.content == first.content  # the same answer, its id included: the provider was not asked again
    assert provider_calls(gateway) == 1
    assert int(second.headers["age"]) >= 0 and "age" not in first.headers
    assert second.headers["x-netra-model"] == "gpt-4o-mini"
    metrics = await gateway.metrics()
    assert sample(metrics, "netra_cache_lookups", "netra_cache_lookups_total", outcome="hit") == 1


async def test_a_repeated_stream_is_replayed_from_the_cache(gateway: Gateway) -> None:
    first = await chat(gateway, stream=True, **PINNED)
    second = await chat(gateway, stream=True, **PINNED)
    assert (outcome(first), outcome(second)) == ("miss", "hit")
    assert second.headers["content-type"].startswith("text/event-stream")
    assert streamed_text(second) == streamed_text(first) != ""
    assert events(second)[-1] == "[DONE]" and provider_calls(gateway) == 1
    # No usage chunk unless asked for, then one, last before [DONE].
    assert all(not (isinstance(e, dict) and e.get("usage")) for e in events(second))
    asked = events(await chat(gateway, stream=True, stream_options={"include_usage": True}, **PINNED))
    assert asked[-2]["choices"] == [] and asked[-2]["usage"]["completion_tokens"] > 0


async def test_streamed_and_plain_requests_share_the_entry(gateway: Gateway) -> None:
    plain = await chat(gateway, **PINNED)
    streamed = await chat(gateway, stream=True, **PINNED)
    assert (outcome(plain), outcome(streamed)) == ("miss", "hit")
    assert streamed_text(streamed) == plain.json()["choices"][0]["message"]["content"]

    streamed_first = await chat(gateway, stream=True, seed=7)
    plain_after = await chat(gateway, seed=7)
    assert (outcome(streamed_first), outcome(plain_after)) == ("miss", "hit")
    assert plain_after.json()["choices"][0]["message"]["content"] == streamed_text(streamed_first)
    assert plain_after.json()["usage"]["total_tokens"] > 0  # the stream's own usage, stored with it
    assert provider_calls(gateway) == 2


async def test_embeddings_are_cached(gateway: Gateway) -> None:
    body = {"model": "text-embedding-3-small", "input": ["a", "b"]}
    first = await gateway.http.post("/v1/embeddings", json=body, headers=gateway.auth())
    second = await gateway.http.post("/v1/embeddings", json=body, headers=gateway.auth())
    assert (outcome(first), outcome(second)) == ("miss", "hit") and second.content == first.content


async def test_completions_are_cached_and_responses_never(gateway: Gateway) -> None:
    completion = {"model": "gpt-4o-mini", "prompt": "Say hi", "temperature": 0}
    plain = [await gateway.http.post("/v1/completions", json=completion, headers=gateway.auth()) for _ in range(2)]
    assert [outcome(r) for r in plain] == ["miss", "hit"] and plain[1].content == plain[0].content
    streamed = await gateway.http.post("/v1/completions", json={**completion, "stream": True}, headers=gateway.auth())
    text = plain[0].json()["choices"][0]["text"]
    assert outcome(streamed) == "hit" and events(streamed)[0]["choices"][0]["text"] == text != ""
    response = {"model": "gpt-4o-mini", "input": "Say hi", "temperature": 0}
    again = [await gateway.http.post("/v1/responses", json=response, headers=gateway.auth()) for _ in range(2)]
    assert [outcome(r) for r in again] == ["bypass", "bypass"] and provider_calls(gateway) == 3


@pytest.mark.parametrize("policy", [ACME_ONLY])
async def test_the_policy_decides_who_is_cached(gateway: Gateway) -> None:
    assert [outcome(await chat(gateway, **PINNED)) for _ in range(2)] == ["miss", "hit"]
    assert [outcome(await chat(gateway, who="limited", **PINNED)) for _ in range(2)] == ["bypass", "bypass"]


async def test_another_tenants_identical_request_is_a_miss(gateway: Gateway) -> None:
    assert outcome(await chat(gateway, **PINNED)) == "miss"
    assert outcome(await chat(gateway, who="limited", **PINNED)) == "miss"
    assert outcome(await chat(gateway, who="limited", **PINNED)) == "hit"
    assert provider_calls(gateway) == 2


async def test_a_nondeterministic_request_is_not_cached_without_the_flag(gateway: Gateway) -> None:
    assert [outcome(await chat(gateway, temperature=0.7)) for _ in range(2)] == ["bypass", "bypass"]
    assert provider_calls(gateway) == 2


@pytest.mark.parametrize("policy", [NONDETERMINISTIC])
async def test_a_policy_with_the_flag_caches_nondeterministic_requests(gateway: Gateway) -> None:
    assert [outcome(await chat(gateway, temperature=0.7)) for _ in range(2)] == ["miss", "hit"]


@pytest.mark.parametrize("policy", [None])
async def test_without_a_policy_nothing_is_cached(gateway: Gateway) -> None:
    assert [outcome(await chat(gateway, **PINNED)) for _ in range(2)] == ["bypass", "bypass"]
    assert provider_calls(gateway) == 2


async def test_requests_with_tools_are_cached_only_when_the_policy_says_tools(gateway: Gateway) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert [outcome(await chat(gateway, tools=tools, **PINNED)) for _ in range(2)] == ["bypass", "bypass"]


# --- never cached -----------------------------------------------------------------------------------------------------


async def test_an_error_is_not_cached(gateway: Gateway) -> None:
    for _ in range(2):
        response = await chat(gateway, model="rejected", **PINNED)
        assert response.status_code == 400
    assert provider_calls(gateway) == 2


@pytest.mark.parametrize("model", ["cut-short", "midstream"])
async def test_a_cut_stream_is_not_cached(gateway: Gateway, model: str) -> None:
    for _ in range(2):
        response = await chat(gateway, model=model, stream=True, **PINNED)
        assert outcome(response) == "miss" and "error" in events(response)[-2]
    assert provider_calls(gateway) == 2


# --- client control ---------------------------------------------------------------------------------------------------


async def test_no_cache_skips_the_lookup_and_stores_the_fresh_answer(gateway: Gateway) -> None:
    first = await chat(gateway, **PINNED)
    fresh = await chat(gateway, headers={"x-netra-cache": "no-cache"}, **PINNED)
    after = await chat(gateway, **PINNED)
    assert [outcome(r) for r in (first, fresh, after)] == ["miss", "miss", "hit"]
    assert fresh.json()["id"] != first.json()["id"] and after.json()["id"] == fresh.json()["id"]
    assert provider_calls(gateway) == 2


async def test_no_store_is_not_stored_but_may_be_served_from_the_cache(gateway: Gateway) -> None:
    unstored = await chat(gateway, headers={"x-netra-cache": "no-store"}, **PINNED)
    assert [outcome(unstored), outcome(await chat(gateway, **PINNED))] == ["miss", "miss"]
    assert outcome(await chat(gateway, headers={"x-netra-cache": "no-store"}, **PINNED)) == "hit"
    assert provider_calls(gateway) == 2


# --- coalescing -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_twenty_concurrent_identical_requests_make_one_provider_call(gateway: Gateway, stream: bool) -> None:
    responses = await asyncio.gather(*(chat(gateway, stream=stream, **PINNED) for _ in range(20)))
    outcomes = [outcome(r) for r in responses]
    assert provider_calls(gateway) == 1
    assert outcomes.count("miss") == 1 and set(outcomes) <= {"miss", "coalesced", "hit"}
    if stream:
        assert len({streamed_text(r) for r in responses}) == 1
    else:
        assert len({r.content for r in responses}) == 1


async def test_followers_of_a_slow_call_are_coalesced(gateway: Gateway) -> None:
    # `drip` streams over two seconds: every request below arrives while the first is in flight.
    first = asyncio.create_task(chat(gateway, model="drip", stream=True, **PINNED))
    while provider_calls(gateway) == 0:
        await asyncio.sleep(0.01)
    followers = await asyncio.gather(*(chat(gateway, model="drip", stream=True, **PINNED) for _ in range(5)))
    leader = await first
    assert [outcome(r) for r in followers] == ["coalesced"] * 5 and outcome(leader) == "miss"
    assert {streamed_text(r) for r in followers} == {streamed_text(leader)} and provider_calls(gateway) == 1


async def test_a_follower_that_leaves_does_not_cancel_the_call(gateway: Gateway) -> None:
    leader = asyncio.create_task(chat(gateway, model="drip", stream=True, **PINNED))
    while provider_calls(gateway) == 0:
        await asyncio.sleep(0.01)
    await first_chunk_then_leave(gateway, model="drip", stream=True, **PINNED)
    assert streamed_text(await leader) != "" and events(await leader)[-1] == "[DONE]"
    assert gateway.fake.cancelled_streams == 0 and provider_calls(gateway) == 1


async def test_a_stream_whose_client_left_still_fills_the_cache(gateway: Gateway) -> None:
    await first_chunk_then_leave(gateway, model="drip", stream=True, **PINNED)
    # The store hold keeps the provider call going to its end, for the cache.
    while gateway.fake.completed_streams == 0:
        await asyncio.sleep(0.01)
    again = await chat(gateway, model="drip", stream=True, **PINNED)
    assert outcome(again) in ("hit", "coalesced") and events(again)[-1] == "[DONE]"
    assert gateway.fake.cancelled_streams == 0 and provider_calls(gateway) == 1


async def first_chunk_then_leave(gateway: Gateway, **fields: Any) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, **fields}
    async with gateway.http.stream("POST", "/v1/chat/completions", json=body, headers=gateway.auth()) as response:
        async for _ in response.aiter_bytes():
            break


# --- the ledger -------------------------------------------------------------------------------------------------------


async def drive_reuses(gateway: Gateway) -> None:
    """A miss and its hits, a slow leader and its coalesced followers, a bypass; each with its own request id."""

    async def ask(rid: str, **fields: Any) -> str:
        return outcome(await chat(gateway, headers={"x-request-id": rid}, **fields))

    assert [await ask("miss", **PINNED), await ask("hit", **PINNED)] == ["miss", "hit"]
    assert await ask("hit-stream", stream=True, **PINNED) == "hit"
    lead = asyncio.create_task(ask("lead", model="drip", stream=True, **PINNED))
    while provider_calls(gateway) < 2:
        await asyncio.sleep(0.01)
    followers = [ask(f"follower-{n}", model="drip", stream=True, **PINNED) for n in range(2)]
    assert await asyncio.gather(*followers) == ["coalesced"] * 2 and await lead == "miss"
    assert await ask("bypass", temperature=0.7) == "bypass"


async def test_a_cacheable_call_its_provider_cannot_take_is_refused_before_any_attempt(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = gateway_settings(settings, tmp_path, fake_upstream)
    custom_turn = {"role": "assistant", "content": None,
                   "tool_calls": [{"id": "c1", "type": "custom", "custom": {"name": "x", "input": "y"}}]}
    async with cached_gateway(configured, fake_upstream, ANY_REQUEST) as gw:
        for rid in ("first", "again"):
            refused = await chat(gw, headers={"x-request-id": rid}, model="claude",
                                 messages=[*MESSAGES, custom_turn], **PINNED)
            assert refused.status_code == 400 and refused.json()["error"]["param"] is not None, refused.text
        assert provider_calls(gw) == 0
    rows = read_rows(settings)
    assert [(rows[rid]["upstream_attempts"], rows[rid]["cache_outcome"]) for rid in ("first", "again")] == [
        (0, "miss"), (0, "miss")]  # fmt: skip


async def test_every_reuse_is_on_the_ledger_attributed_to_the_policy(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    pids: list[str] = []
    configured = gateway_settings(settings, tmp_path, fake_upstream)
    async with cached_gateway(configured, fake_upstream, ANY_REQUEST, pids) as gw:
        await drive_reuses(gw)
    rows = read_rows(settings)
    (pid,) = pids
    fields = ("cache_outcome", "policy_id", "savings_kind", "reused_request_id")
    kinds = {rid: tuple(row[f] for f in fields) for rid, row in rows.items()}
    assert kinds == {
        "miss": ("miss", pid, "", ""), "hit": ("hit", pid, "cache", "miss"),
        "hit-stream": ("hit", pid, "cache", "miss"),
        "lead": ("miss", pid, "", ""), "follower-0": ("coalesced", pid, "coalesce", "lead"),
        "follower-1": ("coalesced", pid, "coalesce", "lead"), "bypass": ("bypass", "", "", ""),
    }
    paid = rows["miss"]["cost_usd"]
    assert paid > 0 and rows["hit"]["cost_usd"] == 0 and rows["hit"]["baseline_cost_usd"] == paid
    assert rows["hit"]["savings_usd"] == paid and rows["hit"]["status"] == "cache_hit"
    assert rows["follower-0"]["cost_usd"] == 0 and rows["follower-0"]["savings_usd"] == rows["lead"]["cost_usd"] > 0
    assert rows["hit"]["policy_version"] == 1 and rows["hit"]["upstream_attempts"] == 0


# --- Redis ------------------------------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_with_redis_stopped_requests_are_still_served(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream, redis_client: Redis
) -> None:
    async with RedisDoor(REDIS_URL) as door:
        configured = gateway_settings(settings, tmp_path, fake_upstream, redis_url=door.url)
        async with cached_gateway(configured, fake_upstream, ANY_REQUEST) as gateway:
            try:
                assert [outcome(await chat(gateway, **PINNED)) for _ in range(2)] == ["miss", "hit"]
                door.set("down")
                assert [outcome(await chat(gateway, stream=s, **PINNED)) for s in (False, True)] == ["bypass"] * 2
                assert provider_calls(gateway) == 3
                bypass = (await gateway.metrics())["netra_cache_bypass"].samples
                assert sum(s.value for s in bypass if s.name == "netra_cache_bypass_total") == 2
                # Identical calls in flight are still shared during the outage: it does not multiply provider calls.
                lead = asyncio.create_task(chat(gateway, model="drip", stream=True, **PINNED))
                while provider_calls(gateway) == 3:
                    await asyncio.sleep(0.01)
                same = [chat(gateway, model="drip", stream=True, **PINNED) for _ in range(3)]
                followers = await asyncio.gather(*same)
                assert [outcome(r) for r in followers] == ["coalesced"] * 3 and outcome(await lead) == "bypass"
                assert provider_calls(gateway) == 4
            finally:
                door.set("open")
                for tenant_id in gateway.tenant_ids.values():
                    keys = [k async for k in redis_client.scan_iter(match=f"netra:cache:{{{tenant_id}}}:*")]
                    if keys:
                        await redis_client.delete(*keys)
