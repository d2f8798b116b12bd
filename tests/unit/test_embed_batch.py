"""The micro-batcher against the real OpenAI adapter and the fake provider: who shares a call, what each one gets."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from core.config import ModelConfig
from core.errors import UpstreamFailed, UpstreamRejected
from gateway.context import CallContext
from gateway.embed_batch import Attempt, EmbeddingBatcher
from gateway.providers.base import UpstreamCall, UpstreamReply
from gateway.providers.openai import OpenAIProvider
from policies import BatchPolicy
from tests.fake_upstream import FakeUpstream
from tests.fake_upstream_openai import embedding_vector, input_tokens
from tests.unit.test_flight import provider_for, settle, watchdog  # noqa: F401 - the watchdog fixture applies here

MODEL = "text-embedding-3-small"
LONG_WAIT = BatchPolicy(kind="batch", name="wait for company", id="pol_b", window_ms=60_000, max_inputs=3)
TOO_LONG = "word " * 9000  # over the fake's (and OpenAI's) 8192-token limit per input


@pytest.fixture
def provider(fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession) -> OpenAIProvider:
    return provider_for(fake_upstream, http_session)


@pytest.fixture
def batcher() -> EmbeddingBatcher:
    return EmbeddingBatcher(CollectorRegistry())


def sender(provider: OpenAIProvider) -> Attempt:
    """One attempt at the provider, counted on the context (the handler's retries are exercised end to end)."""

    async def attempt(ctx: CallContext, call: UpstreamCall) -> UpstreamReply:
        ctx.upstream_called = True
        ctx.upstream_attempts += 1
        return await provider.send(call)

    return attempt


def member(text: Any, model: str = MODEL, tenant: str = "t1", **fields: Any) -> tuple[CallContext, UpstreamCall]:
    ctx = CallContext(f"req_{text!s:.10}", "POST", "/v1/embeddings")
    ctx.tenant_id = tenant
    body = {"model": model, "input": text, "encoding_format": "base64", **fields}
    return ctx, UpstreamCall("embeddings", body, ModelConfig(name=model, provider="fake", upstream=model), False,
                             ctx.request_id)


def send(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, text: Any, policy: BatchPolicy = LONG_WAIT, **kw: Any
) -> tuple[CallContext, asyncio.Task[UpstreamReply]]:
    ctx, call = member(text, **kw)
    destination = (provider.config.name, call.model.upstream_name)
    task = asyncio.create_task(batcher.send(ctx, call, policy, destination, sender(provider)))
    return ctx, task


def vectors(reply: UpstreamReply) -> list[str]:
    return [item["embedding"] for item in orjson.loads(reply.body)["data"]]


def own(*texts: str) -> list[str]:
    return [embedding_vector(text, 8)[1] for text in texts]


def upstream_inputs(fake: FakeUpstream) -> list[Any]:
    return [request.json["input"] for request in fake.requests]


async def test_three_concurrent_requests_share_one_call_and_each_gets_its_own_vectors(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    sent = [send(batcher, provider, text) for text in ("alpha", "bravo", "charlie")]
    replies = [await task for _, task in sent]
    assert upstream_inputs(fake_upstream) == [["alpha", "bravo", "charlie"]]
    assert [vectors(reply) for reply in replies] == [own("alpha"), own("bravo"), own("charlie")]
    usages = [reply.usage.prompt_tokens for reply in replies if reply.usage is not None]
    assert sum(usages) == input_tokens(["alpha", "bravo", "charlie"]) and len(usages) == 3
    assert all(ctx.upstream_attempts == 1 and ctx.policy_id == "pol_b" for ctx, _ in sent)


async def test_a_request_alone_when_the_window_ends_goes_as_it_is(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    policy = BatchPolicy(kind="batch", name="short", window_ms=1)
    ctx, task = send(batcher, provider, "solo", policy)
    reply = await task
    _, call = member("solo")
    assert fake_upstream.requests[0].body == provider.encode(call)  # byte for byte what it would send unbatched
    assert vectors(reply) == own("solo") and ctx.policy_id == ""  # nothing shared: no policy acted on the row


async def test_a_member_that_leaves_before_the_call_drops_out_of_it(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    _, leaving = send(batcher, provider, "leaving")
    _, staying = send(batcher, provider, "staying")
    await settle()
    leaving.cancel()
    await settle()
    others = [send(batcher, provider, text)[1] for text in ("two", "three")]
    assert vectors(await staying) == own("staying")
    assert [vectors(await task) for task in others] == [own("two"), own("three")]
    assert upstream_inputs(fake_upstream) == [["staying", "two", "three"]]
    assert len(batcher) == 0


async def test_a_member_that_leaves_once_the_call_is_made_does_not_cancel_it_for_the_others(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    slow = f"{MODEL}-slow-200"
    sent = [send(batcher, provider, text, model=slow)[1] for text in ("a", "b", "c")]
    while not fake_upstream.requests:
        await asyncio.sleep(0.01)
    sent[0].cancel()
    assert [vectors(await task) for task in sent[1:]] == [own("b"), own("c")]
    assert len(fake_upstream.requests) == 1


async def test_when_every_member_left_the_shared_call_is_cancelled(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    sent = [send(batcher, provider, text, model=f"{MODEL}-slow-3000")[1] for text in ("a", "b", "c")]
    while not fake_upstream.requests:
        await asyncio.sleep(0.01)
    for task in sent:
        task.cancel()
    await asyncio.gather(*sent, return_exceptions=True)
    await settle()
    assert not batcher._running  # the call's task ended without waiting out the slow provider


async def test_a_poisoned_input_fails_only_its_owner(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    sent = [send(batcher, provider, text) for text in ("fine", TOO_LONG, "also fine")]
    results = await asyncio.gather(*(task for _, task in sent), return_exceptions=True)
    assert isinstance(results[1], UpstreamRejected) and results[1].status_code == 400
    assert "maximum context length" in results[1].message
    good = [result for result in results if isinstance(result, UpstreamReply)]
    assert [vectors(reply) for reply in good] == [own("fine"), own("also fine")]
    # The shared call, then each member on its own: the innocent ones' own bodies, untouched.
    assert upstream_inputs(fake_upstream)[0] == ["fine", TOO_LONG, "also fine"]
    assert sorted(map(str, upstream_inputs(fake_upstream)[1:])) == sorted(["fine", TOO_LONG, "also fine"])
    assert [ctx.upstream_attempts for ctx, _ in sent] == [2, 2, 2]  # the shared attempt and its own


async def test_a_failing_batch_fails_every_member_and_no_other_batch(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    broken = [send(batcher, provider, text, model=f"{MODEL}-error-500")[1] for text in ("a", "b", "c")]
    healthy = [send(batcher, provider, text)[1] for text in ("d", "e", "f")]
    failures = await asyncio.gather(*broken, return_exceptions=True)
    assert all(isinstance(error, UpstreamFailed) and error.status_code == 502 for error in failures)
    assert len({id(error) for error in failures}) == 3  # each member raises its own copy
    assert [vectors(await task) for task in healthy] == [own("d"), own("e"), own("f")]
    assert len(fake_upstream.requests) == 2  # the broken batch was not retried member by member


async def test_tenants_never_share_a_batch(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    first = [send(batcher, provider, f"one-{n}", tenant="t1")[1] for n in range(3)]
    second = [send(batcher, provider, f"two-{n}", tenant="t2")[1] for n in range(3)]
    await asyncio.gather(*first, *second)
    assert sorted(map(str, upstream_inputs(fake_upstream))) == sorted(
        [str([f"one-{n}" for n in range(3)]), str([f"two-{n}" for n in range(3)])]
    )


async def test_a_request_that_would_overflow_the_batch_sends_it_first(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    policy = BatchPolicy(kind="batch", name="four", window_ms=60_000, max_inputs=4)
    a = send(batcher, provider, ["a1", "a2"], policy)[1]
    b = send(batcher, provider, ["b1", "b2", "b3"], policy)[1]  # 2 + 3 > 4: a goes now, b opens the next batch
    c = send(batcher, provider, "c", policy)[1]  # b + c = 4: full, sent at once
    assert [vectors(await task) for task in (a, b, c)] == [own("a1", "a2"), own("b1", "b2", "b3"), own("c")]
    assert upstream_inputs(fake_upstream) == [["a1", "a2"], ["b1", "b2", "b3", "c"]]


async def test_strings_and_token_inputs_never_share_a_call(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    policy = BatchPolicy(kind="batch", name="two", window_ms=60_000, max_inputs=2)
    tasks = [send(batcher, provider, value, policy)[1] for value in ("x", [1, 2, 3], "y", [[4, 5]])]
    replies = await asyncio.gather(*tasks)
    assert sorted(map(str, upstream_inputs(fake_upstream))) == sorted([str(["x", "y"]), str([[1, 2, 3], [4, 5]])])
    assert vectors(replies[1]) == [embedding_vector(str([1, 2, 3]), 8)[1]]


async def test_unknown_input_shapes_and_oversized_requests_go_straight_upstream(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    mixed = send(batcher, provider, ["a", 1])[1]  # the provider judges what batching does not understand
    full = send(batcher, provider, ["a", "b", "c"])[1]  # as many inputs as a batch may hold
    await asyncio.gather(mixed, full)
    assert sorted(map(str, upstream_inputs(fake_upstream))) == sorted([str(["a", 1]), str(["a", "b", "c"])])
    assert len(batcher) == 0


async def test_the_provider_answering_out_of_order_is_put_back_in_order(
    batcher: EmbeddingBatcher, provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    model = f"{MODEL}-shuffled-item-usage"
    replies = await asyncio.gather(*(send(batcher, provider, text, model=model)[1] for text in ("a", "bb" * 40, "c")))
    assert [vectors(reply) for reply in replies] == [own("a"), own("bb" * 40), own("c")]
    assert [reply.usage.prompt_tokens for reply in replies if reply.usage] == [1, 20, 1]  # the items' own counts


async def test_an_unexpected_failure_reaches_every_member_instead_of_leaving_them_waiting(
    batcher: EmbeddingBatcher, provider: OpenAIProvider
) -> None:
    async def broken(ctx: CallContext, call: UpstreamCall) -> UpstreamReply:
        raise RuntimeError("a defect in the attempt machinery")

    tasks = []
    for text in ("a", "b", "c"):
        ctx, call = member(text)
        tasks.append(asyncio.create_task(batcher.send(ctx, call, LONG_WAIT, ("fake", MODEL), broken)))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
