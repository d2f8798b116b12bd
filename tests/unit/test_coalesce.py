"""Single flight: identical calls in flight together make one provider call, and failures and departures behave."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
import pytest

from core.errors import UpstreamFailed, UpstreamRejected
from gateway.coalesce import Coalescer, Shared
from gateway.flight import Flight, Subscription
from gateway.providers.base import DONE_EVENT, UpstreamReply
from gateway.providers.openai import OpenAIProvider
from tests.fake_upstream import FakeUpstream
from tests.fake_upstream_behaviour import DEFAULT_REPLY
from tests.unit.test_flight import (  # noqa: F401 - the watchdog fixture applies here too
    ScriptedStream,
    chat_call,
    collect,
    event,
    finished,
    provider_for,
    settle,
    watchdog,
)

KEY = "acme|chat/completions|canonical-request"
GOOD = "gpt-4o-mini"


@pytest.fixture
def provider(fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession) -> OpenAIProvider:
    return provider_for(fake_upstream, http_session)


def sender(provider: OpenAIProvider, model: str = GOOD) -> Callable[[], Awaitable[UpstreamReply]]:
    return lambda: provider.send(chat_call(model, stream=False))


def starter(provider: OpenAIProvider, model: str = GOOD, *, store: bool = False) -> Callable[[], Awaitable[Flight]]:
    async def start() -> Flight:
        return Flight(await provider.open_stream(chat_call(model)), keep_for_store=store)

    return start


async def until_waiting(registry: Coalescer, count: int) -> None:
    """Let the callers run until `count` of them wait on the key (loop turns, never a clock)."""
    while registry.waiting(KEY) < count:
        await asyncio.sleep(0)


def text_of(body: bytes) -> str:
    chunks = [orjson.loads(part[6:]) for part in body.split(b"\n\n") if part.startswith(b"data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def test_twenty_identical_replies_make_one_provider_call(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    registry = Coalescer()
    results = await asyncio.gather(*(registry.reply(KEY, f"req_{n}", sender(provider)) for n in range(20)))
    assert len(fake_upstream.requests) == 1
    assert [r.coalesced for r in results] == [False] + [True] * 19
    assert {r.leader_id for r in results} == {"req_0"}
    assert len({r.value.body for r in results}) == 1
    assert orjson.loads(results[5].value.body)["choices"][0]["message"]["content"] == DEFAULT_REPLY
    assert results[5].value.usage == results[0].value.usage and results[5].value.usage is not results[0].value.usage
    assert len(registry) == 0


async def test_twenty_identical_streams_make_one_provider_call(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    registry = Coalescer()

    async def client(n: int) -> tuple[Shared[Subscription], bytes]:
        shared = await registry.stream(KEY, f"req_{n}", starter(provider, "gpt-4o-mini-drip-1"))
        return shared, await collect(shared.value)

    results = await asyncio.gather(*(client(n) for n in range(20)))
    await finished(results[0][0].value.flight)
    assert len(fake_upstream.requests) == 1 and fake_upstream.completed_streams == 1
    assert [shared.coalesced for shared, _ in results] == [False] + [True] * 19
    assert {shared.leader_id for shared, _ in results} == {"req_0"}
    assert len({body for _, body in results}) == 1
    assert results[0][1].endswith(DONE_EVENT) and text_of(results[0][1]) == DEFAULT_REPLY
    assert len(registry) == 0


async def test_a_newcomer_joins_a_running_stream_live_and_gets_it_from_the_start() -> None:
    registry = Coalescer()
    stream = ScriptedStream()

    async def start() -> Flight:
        return Flight(stream)

    leader = await registry.stream(KEY, "req_lead", start)
    stream.feed(event(1))
    assert await leader.value.__anext__() == event(1)
    late = await registry.stream(KEY, "req_late", start)
    assert late.coalesced and late.leader_id == "req_lead" and stream.iterations == 1
    stream.feed(event(2))
    stream.end()
    assert await collect(late.value) == event(1) + event(2)
    assert await collect(leader.value) == event(2)
    await finished(leader.value.flight)
    assert len(registry) == 0


async def test_a_retryable_leader_failure_releases_the_followers_to_call_on_their_own(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    registry = Coalescer()
    leader = asyncio.create_task(registry.reply(KEY, "req_lead", sender(provider, "gpt-4o-mini-error-500")))
    followers = [asyncio.create_task(registry.reply(KEY, f"req_{n}", sender(provider))) for n in range(5)]
    with pytest.raises(UpstreamFailed):
        await leader
    results = await asyncio.gather(*followers)
    assert len(fake_upstream.requests) == 1 + 5  # the failed call, then each follower's own
    assert all(not r.coalesced and r.leader_id == f"req_{n}" for n, r in enumerate(results))
    assert len(registry) == 0


async def test_a_failure_that_was_the_requests_fault_reaches_every_follower(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    registry = Coalescer()
    calls = [registry.reply(KEY, f"req_{n}", sender(provider, "gpt-4o-mini-error-400")) for n in range(10)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert len(fake_upstream.requests) == 1
    assert all(isinstance(o, UpstreamRejected) and o.status_code == 400 for o in outcomes)
    assert len({id(o) for o in outcomes}) == 10  # each its own copy, not one traceback growing across tasks
    assert len(registry) == 0


async def test_a_stream_leaders_failure_before_the_first_event_releases_the_followers(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    registry = Coalescer()
    leader = asyncio.create_task(registry.stream(KEY, "req_lead", starter(provider, "gpt-4o-mini-error-503")))
    followers = [asyncio.create_task(registry.stream(KEY, f"req_{n}", starter(provider))) for n in range(3)]
    with pytest.raises(UpstreamFailed):
        await leader
    bodies = [await collect((await follower).value) for follower in followers]
    assert len(fake_upstream.requests) == 1 + 3
    assert all(text_of(body) == DEFAULT_REPLY for body in bodies)
    assert len(registry) == 0


async def test_a_cancelled_leader_does_not_strand_its_followers(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    registry = Coalescer()
    leader = asyncio.create_task(registry.reply(KEY, "req_lead", sender(provider, "gpt-4o-mini-slow-50")))
    followers = [asyncio.create_task(registry.reply(KEY, f"req_{n}", sender(provider, "gpt-4o-mini-slow-50")))
                 for n in range(3)]
    await until_waiting(registry, 4)
    leader.cancel()  # its client left: the middleware cancels its task
    results = await asyncio.gather(*followers)
    assert leader.cancelled()
    assert len(fake_upstream.requests) == 1
    assert all(r.coalesced and r.leader_id == "req_lead" for r in results)
    assert orjson.loads(results[0].value.body)["choices"][0]["message"]["content"] == DEFAULT_REPLY
    assert len(registry) == 0


async def test_a_cancelled_stream_leader_does_not_strand_its_followers(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    registry = Coalescer()
    start = starter(provider, "gpt-4o-mini-drip-1")
    leader = asyncio.create_task(registry.stream(KEY, "req_lead", start))
    follower = asyncio.create_task(registry.stream(KEY, "req_follow", start))
    await until_waiting(registry, 2)
    leader.cancel()
    shared = await follower
    body = await collect(shared.value)
    await finished(shared.value.flight)
    assert leader.cancelled() and shared.coalesced
    assert text_of(body) == DEFAULT_REPLY and body.endswith(DONE_EVENT)
    assert len(fake_upstream.requests) == 1 and fake_upstream.completed_streams == 1
    assert len(registry) == 0


async def test_a_follower_whose_client_leaves_does_not_cancel_the_leader(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    registry = Coalescer()
    leader = asyncio.create_task(registry.reply(KEY, "req_lead", sender(provider, "gpt-4o-mini-slow-50")))
    follower = asyncio.create_task(registry.reply(KEY, "req_follow", sender(provider)))
    await until_waiting(registry, 2)
    follower.cancel()
    result = await leader
    assert follower.cancelled() and not result.coalesced
    assert orjson.loads(result.value.body)["choices"][0]["message"]["content"] == DEFAULT_REPLY
    assert len(fake_upstream.requests) == 1 and len(registry) == 0


async def test_when_every_caller_leaves_the_provider_call_is_cancelled() -> None:
    registry = Coalescer()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def call() -> UpstreamReply:
        started.set()
        try:
            await asyncio.Event().wait()  # a provider that never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    callers = [asyncio.create_task(registry.reply(KEY, f"req_{n}", call)) for n in range(3)]
    await started.wait()
    for caller in callers:
        caller.cancel()
    await cancelled.wait()
    assert len(registry) == 0


async def test_a_shared_stream_is_closed_when_leader_and_followers_all_left() -> None:
    registry = Coalescer()
    stream = ScriptedStream()

    async def start() -> Flight:
        return Flight(stream)

    subs = [(await registry.stream(KEY, f"req_{n}", start)).value for n in range(3)]
    stream.feed(event(1))
    for sub in subs[:2]:
        sub.close()
    await settle()
    assert not stream.closed and len(registry) == 1  # one client still reads, and newcomers may still join
    subs[2].close()
    await finished(subs[2].flight)
    assert stream.closed and not stream.finished and len(registry) == 0


async def test_a_stream_kept_for_the_cache_runs_to_its_end_after_every_client_left() -> None:
    registry = Coalescer()
    stream = ScriptedStream()

    async def start() -> Flight:
        return Flight(stream, keep_for_store=True)

    shared = await registry.stream(KEY, "req_lead", start)
    shared.value.close()
    stream.feed(event(1), event(2))
    stream.end()
    await finished(shared.value.flight)
    assert shared.value.flight.cacheable and shared.value.flight.events == [event(1), event(2)]
    assert len(registry) == 0
