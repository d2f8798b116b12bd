"""Embeddings micro-batching through the whole gateway, driven by the official SDK as an application would.

A batch policy with a long window and `max_inputs: 3` makes every batch flush when its third input arrives, so which
requests share a call never depends on timing. Provider calls are counted at the fake (`fake.requests`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from tests.fake_upstream import WIRES, FakeUpstream
from tests.fake_upstream_openai import embedding_vector, input_tokens
from tests.integration.harness import CONFIG, make_tenants, sample, serve
from tests.integration.test_cache_gateway import activate_policies
from tests.integration.test_ledger_outcomes import read_rows
from tests.unit.helpers import closed_port

BATCH = "kind: batch\nname: coalesce embeddings\nmatch: {endpoints: [embeddings]}\nwindow_ms: 60000\nmax_inputs: 3\n"
CACHE = "kind: cache\nname: cache embeddings\nmatch: {endpoints: [embeddings]}\nttl: 1h\n"
EXTRA_MODELS = "  - {name: embed-exact, provider: fake, upstream: text-embedding-3-small-item-usage-shuffled}\n"
MODEL = "text-embedding-3-small"
TOO_LONG = "word " * 9000  # over the provider's 8192 tokens per input


@dataclass
class Running:
    """A gateway with a batch policy (or none), the fake behind it, and an SDK client per tenant."""

    fake: FakeUpstream
    clients: dict[str, openai.AsyncOpenAI]
    url: str
    policy_ids: list[str]

    async def embed(self, text: Any, who: str = "acme", model: str = MODEL, **fields: Any) -> Any:
        return await self.clients[who].embeddings.create(model=model, input=text, **fields)


@asynccontextmanager
async def batching(settings: Settings, tmp_path: Path, fake: FakeUpstream, policies: str | None) -> AsyncIterator[
    Running
]:
    config = tmp_path / "netra.yaml"
    config.write_text(CONFIG.format(fake=fake.url, closed=closed_port()) + EXTRA_MODELS, encoding="utf-8")
    configured = settings.model_copy(update={"config": config, "graceful_shutdown_timeout": 5.0})
    keys, _ = await make_tenants(configured)
    ids = await activate_policies(configured, policies) if policies else []
    async with serve(configured, {"FAKE_OPENAI_KEY": fake.api_key}) as url:
        clients = {
            who: openai.AsyncOpenAI(base_url=url + "/v1", api_key=keys[who], max_retries=0, timeout=30)
            for who in ("acme", "tiny")
        }
        try:
            yield Running(fake, clients, url, ids)
        finally:
            for client in clients.values():
                await client.close()


@pytest.fixture
async def gateway(settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream) -> AsyncIterator[Running]:
    async with batching(settings, tmp_path, fake_upstream, BATCH) as running:
        yield running


def own(text: Any) -> list[float]:
    """The fake's vector for one input: what the caller must get back, whoever shared its call."""
    return list(embedding_vector(str(text), 8)[0])


def upstream_inputs(fake: FakeUpstream) -> list[Any]:
    """The input of every upstream request, in the order they were made."""
    return [request.json["input"] for request in fake.requests]


def batches(fake: FakeUpstream) -> list[list[str]]:
    """Each upstream request's inputs, sorted (requests reach the gateway in whatever order the network allows)."""
    return sorted(sorted(inputs) if isinstance(inputs, list) else [inputs] for inputs in upstream_inputs(fake))


@pytest.mark.parametrize("fake_wire", WIRES)
async def test_three_concurrent_calls_become_one_upstream_request_and_each_caller_gets_its_own_vectors(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    texts = ("the first input", "a second", "and a rather longer third input than the others")
    async with batching(settings, tmp_path, fake_upstream, BATCH) as gw:
        replies = await asyncio.gather(*(gw.embed(text) for text in texts))
    assert batches(fake_upstream) == [sorted(texts)]
    for text, reply in zip(texts, replies, strict=True):
        assert [item.embedding for item in reply.data] == [own(text)]
        assert reply.data[0].index == 0 and reply.model == MODEL and reply.object == "list"
    shares = [reply.usage.prompt_tokens for reply in replies]
    assert sum(shares) == input_tokens(list(texts))  # the provider's total, split among the callers
    assert shares[2] > shares[1] and all(reply.usage.total_tokens == reply.usage.prompt_tokens for reply in replies)


async def test_each_caller_gets_its_slice_of_a_shared_call_in_its_own_order(gateway: Running) -> None:
    several, single = await asyncio.gather(gw_embed(gateway, ["x-one", "x-two"]), gw_embed(gateway, "z"))
    (shared,) = upstream_inputs(gateway.fake)
    assert sorted(shared) == ["x-one", "x-two", "z"] and shared.index("x-one") + 1 == shared.index("x-two")
    assert [item.embedding for item in several.data] == [own("x-one"), own("x-two")]
    assert [item.index for item in several.data] == [0, 1]
    assert [item.embedding for item in single.data] == [own("z")]


def gw_embed(gateway: Running, text: Any, **fields: Any) -> Any:
    return gateway.embed(text, **fields)


async def test_each_member_has_its_own_ledger_row_with_its_share_and_no_saving_claimed(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    texts = ("one", "two two two two", "three")
    async with batching(settings, tmp_path, fake_upstream, BATCH) as gw:
        replies = await asyncio.gather(
            *(gw.embed(text, extra_headers={"x-request-id": f"member-{n}"}) for n, text in enumerate(texts))
        )
        metrics = await gw_metrics(gw)
        (pid,) = gw.policy_ids
    rows = read_rows(settings)
    assert sorted(rows) == ["member-0", "member-1", "member-2"]
    for n, reply in enumerate(replies):
        row = rows[f"member-{n}"]
        assert row["prompt_tokens"] == reply.usage.prompt_tokens and row["status"] == "ok"
        assert row["tokens_estimated"] == 0 and row["cache_outcome"] == "bypass"
        assert (row["savings_kind"], row["savings_usd"]) == ("", 0) and row["cost_usd"] == row["baseline_cost_usd"]
        assert row["upstream_attempts"] == 1 and row["served_model"] == MODEL and row["policy_id"] == pid
    assert sum(row["prompt_tokens"] for row in rows.values()) == input_tokens(list(texts))
    assert sum(row["cost_usd"] for row in rows.values()) > 0
    assert sample(metrics, "netra_embedding_calls_saved", "netra_embedding_calls_saved_total", provider="fake") == 2


async def gw_metrics(gateway: Running) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        text = (await http.get("/metrics")).text
    return {family.name: family for family in text_string_to_metric_families(text)}


async def test_a_failing_batch_fails_only_its_own_members(gateway: Running) -> None:
    broken = [gateway.embed(f"b{n}", model="broken") for n in range(3)]
    healthy = [gateway.embed(f"h{n}") for n in range(3)]
    results = await asyncio.gather(*broken, *healthy, return_exceptions=True)
    for failure in results[:3]:
        assert isinstance(failure, openai.InternalServerError) and failure.status_code == 502
        assert isinstance(failure.body, dict) and failure.body["code"] == "upstream_error"
    assert [[item.embedding for item in reply.data] for reply in results[3:]] == [[own(f"h{n}")] for n in range(3)]
    failed = [inputs for inputs in batches(gateway.fake) if inputs[0].startswith("b")]
    # The shared call and its retries (NETRA_UPSTREAM_ATTEMPTS, 3 by default); never member by member.
    assert failed == [["b0", "b1", "b2"]] * Settings().upstream_attempts


async def test_a_poisoned_input_fails_only_its_owner(gateway: Running) -> None:
    results = await asyncio.gather(
        gateway.embed("innocent"), gateway.embed(TOO_LONG), gateway.embed("bystander"), return_exceptions=True
    )
    innocent, poisoned, bystander = results
    assert isinstance(poisoned, openai.BadRequestError) and poisoned.status_code == 400
    assert "maximum context length" in poisoned.message
    assert [item.embedding for item in innocent.data] == [own("innocent")]
    assert [item.embedding for item in bystander.data] == [own("bystander")]
    assert len(gateway.fake.requests) == 4  # the refused shared call, then each member on its own


async def test_tenants_never_share_a_batch(gateway: Running) -> None:
    calls = [gateway.embed(f"{who}-{n}", who=who) for n in range(3) for who in ("acme", "tiny")]
    await asyncio.gather(*calls)
    assert batches(gateway.fake) == [["acme-0", "acme-1", "acme-2"], ["tiny-0", "tiny-1", "tiny-2"]]


async def test_without_a_batch_policy_nothing_is_batched(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    async with batching(settings, tmp_path, fake_upstream, None) as gw:
        replies = await asyncio.gather(*(gw.embed(f"alone-{n}") for n in range(3)))
    assert sorted(upstream_inputs(fake_upstream)) == ["alone-0", "alone-1", "alone-2"]  # each body as it was sent
    assert [reply.data[0].embedding for reply in replies] == [own(f"alone-{n}") for n in range(3)]


async def test_per_input_counts_from_the_provider_are_each_callers_exact_usage(gateway: Running) -> None:
    texts = ("short", "a somewhat longer input", "mid-sized one")
    replies = await asyncio.gather(*(gateway.embed(text, model="embed-exact") for text in texts))
    assert [reply.usage.prompt_tokens for reply in replies] == [input_tokens(text) for text in texts]
    assert [reply.data[0].embedding for reply in replies] == [own(text) for text in texts]  # despite the shuffle


async def test_requests_the_cache_did_not_answer_are_batched_and_then_served_from_the_cache(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    async with batching(settings, tmp_path, fake_upstream, BATCH + "---\n" + CACHE) as gw:
        first = await asyncio.gather(*(gw.embed(f"c{n}") for n in range(3)))
        again = await gw.embed("c1")
    assert batches(fake_upstream) == [["c0", "c1", "c2"]]
    assert again.data[0].embedding == own("c1") == first[1].data[0].embedding
