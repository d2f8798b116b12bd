"""The shared stream: one upstream read, every consumer served from the start, the provider call closed when due."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from core.config import ModelConfig, ProviderConfig
from core.usage import Usage
from gateway.flight import Flight, FlightClosed, NotJoinable, Subscription
from gateway.providers.base import DONE_EVENT, UpstreamCall
from gateway.providers.http import Timeouts
from gateway.providers.openai import OpenAIProvider
from tests.fake_upstream import FakeUpstream
from tests.fake_upstream_behaviour import DEFAULT_REPLY

TIMEOUTS = Timeouts(connect=5, first_byte=5, idle=5, total=30)


class ScriptedStream:
    """An UpstreamStream whose events the test feeds one at a time; it records how it was read and closed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error_code = ""
        self.iterations = 0  # how many times events() was started
        self.reads = 0  # events taken from upstream
        self.finished = False  # the upstream sent its last event
        self.closed = False

    def feed(self, *events: bytes | Exception) -> None:
        for event in events:
            self.queue.put_nowait(event)

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def events(self) -> AsyncIterator[bytes]:
        self.iterations += 1
        while (item := await self.queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            self.reads += 1
            yield item
        self.usage = Usage(prompt_tokens=3, completion_tokens=self.reads)
        self.finished = True

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
async def watchdog() -> AsyncIterator[None]:
    """A regression that leaves something waiting forever fails its test (cancelled) instead of hanging the run."""
    loop = asyncio.get_running_loop()
    handle = loop.call_later(10, lambda: [task.cancel() for task in asyncio.all_tasks(loop)])
    yield
    handle.cancel()


def event(n: int) -> bytes:
    return b'data: {"n":%d}\n\n' % n


async def settle() -> None:
    """Let every ready task run until nothing is left to do (a fixed number of loop turns, not a time)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def finished(flight: Flight) -> None:
    """Wait for the flight to be done; the bound only turns a regression into a failure instead of a hang."""
    async with asyncio.timeout(10):
        await flight.wait()


async def collect(sub: Subscription) -> bytes:
    async with sub:
        return b"".join([data async for data in sub])


async def test_a_late_joiner_gets_every_event_from_the_start() -> None:
    stream = ScriptedStream()
    flight = Flight(stream)
    early = asyncio.create_task(collect(flight.subscribe()))
    stream.feed(event(1), event(2))
    await settle()
    late = asyncio.create_task(collect(flight.subscribe()))
    stream.feed(event(3))
    stream.end()
    expected = event(1) + event(2) + event(3)
    assert await early == expected
    assert await late == expected
    assert stream.iterations == 1 and stream.reads == 3  # the upstream was read once for both
    assert flight.completed and flight.cacheable and flight.events == [event(1), event(2), event(3)]
    assert flight.usage == Usage(prompt_tokens=3, completion_tokens=3)


async def test_a_consumer_that_is_cancelled_does_not_disturb_the_others() -> None:
    stream = ScriptedStream()
    flight = Flight(stream)
    leaving = asyncio.create_task(collect(flight.subscribe()))
    staying = asyncio.create_task(collect(flight.subscribe()))
    stream.feed(event(1))
    await settle()
    leaving.cancel()  # as the middleware does when a client disconnects
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert not stream.closed and flight.consumers == 1
    stream.feed(event(2))
    stream.end()
    assert await staying == event(1) + event(2)
    assert flight.completed and stream.finished and stream.closed


async def test_the_upstream_call_is_closed_when_the_last_consumer_leaves() -> None:
    stream = ScriptedStream()
    flight = Flight(stream)
    first, second = flight.subscribe(), flight.subscribe()
    stream.feed(event(1))
    assert await first.__anext__() == event(1)
    first.close()
    await settle()
    assert not stream.closed  # one consumer is still there
    second.close()
    await finished(flight)
    assert stream.closed and not stream.finished
    assert flight.closed_early and not flight.completed and not flight.cacheable
    with pytest.raises(NotJoinable):
        flight.subscribe()


async def test_a_store_hold_keeps_the_call_running_after_every_client_left() -> None:
    stream = ScriptedStream()
    flight = Flight(stream, keep_for_store=True)
    sub = flight.subscribe()
    stream.feed(event(1))
    assert await sub.__anext__() == event(1)
    sub.close()
    stream.feed(event(2))
    await settle()
    assert not stream.closed and stream.reads == 2  # still reading for the cache fill
    stream.end()
    await finished(flight)
    assert flight.cacheable and flight.events == [event(1), event(2)] and stream.finished and stream.closed


async def test_releasing_the_last_hold_closes_the_call() -> None:
    stream = ScriptedStream()
    flight = Flight(stream)
    flight.hold()
    sub = flight.subscribe()
    sub.close()
    stream.feed(event(1))
    await settle()
    assert not stream.closed and stream.reads == 1
    flight.release()
    await finished(flight)
    assert stream.closed and not stream.finished and not flight.cacheable


async def test_a_flight_nobody_attached_is_closed_by_aclose() -> None:
    stream = ScriptedStream()
    flight = Flight(stream)
    await flight.aclose()
    assert stream.closed and stream.iterations == 0 and flight.done and not flight.joinable


async def test_aclose_cuts_open_subscriptions_loudly() -> None:
    stream = ScriptedStream()
    flight = Flight(stream)
    sub = flight.subscribe()
    stream.feed(event(1))
    assert await sub.__anext__() == event(1)
    await flight.aclose()
    with pytest.raises(FlightClosed):
        await sub.__anext__()
    assert stream.closed


async def test_an_unexpected_upstream_error_reaches_every_consumer() -> None:
    stream = ScriptedStream()
    flight = Flight(stream)
    subs = [flight.subscribe(), flight.subscribe()]
    stream.feed(event(1), RuntimeError("iterator broke"))
    for sub in subs:
        assert await sub.__anext__() == event(1)
        with pytest.raises(RuntimeError, match="iterator broke"):
            await sub.__anext__()
    assert stream.closed and not flight.completed and not flight.cacheable


async def test_past_the_record_limit_a_flight_is_neither_cacheable_nor_joinable() -> None:
    stream = ScriptedStream()
    flight = Flight(stream, keep_for_store=True, record_limit=2 * len(event(1)))
    sub = flight.subscribe()
    stream.feed(event(1), event(2), event(3))
    await settle()
    assert not flight.recording and not flight.joinable
    with pytest.raises(NotJoinable):
        flight.subscribe()
    stream.feed(event(4))
    stream.end()
    assert await collect(sub) == b"".join(event(n) for n in range(1, 5))  # the subscriber still gets everything
    assert flight.completed and not flight.cacheable and flight.events == []


async def test_past_the_record_limit_the_pump_waits_for_the_slowest_consumer() -> None:
    stream = ScriptedStream()
    flight = Flight(stream, record_limit=2 * len(event(1)))
    slow = flight.subscribe()
    stream.feed(*(event(n) for n in range(1, 11)))
    stream.end()
    await settle()
    assert stream.reads == 3  # past the limit it stops reading upstream while the consumer is behind
    assert await slow.__anext__() == event(1) + event(2) + event(3)
    assert await collect(slow) == b"".join(event(n) for n in range(4, 11))
    assert stream.finished and stream.closed


async def test_overflowing_with_only_a_store_hold_left_closes_the_call() -> None:
    stream = ScriptedStream()
    flight = Flight(stream, keep_for_store=True, record_limit=len(event(1)))
    stream.feed(event(1), event(2), event(3))
    await finished(flight)  # nothing can be stored any more and nobody reads: no reason to keep calling
    assert stream.closed and not stream.finished and stream.reads == 2 and flight.closed_early


async def test_done_callbacks_run_once_the_call_is_closed() -> None:
    stream = ScriptedStream()
    flight = Flight(stream, keep_for_store=True)
    seen: list[tuple[bool, list[bytes]]] = []
    flight.on_done(lambda f: seen.append((stream.closed, f.events)))
    stream.feed(event(1))
    stream.end()
    await finished(flight)
    flight.on_done(lambda f: seen.append((f.done, [])))  # registered late: called at once
    assert seen == [(True, [event(1)]), (True, [])]


def provider_for(fake: FakeUpstream, session: aiohttp.ClientSession) -> OpenAIProvider:
    """The real OpenAI adapter pointed at the fake provider on loopback."""
    config = ProviderConfig(name="fake", kind="openai", base_url=fake.url + "/v1", api_key=SecretStr(fake.api_key))
    return OpenAIProvider(config, session, TIMEOUTS)


def chat_call(model: str, *, stream: bool = True) -> UpstreamCall:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return UpstreamCall("chat/completions", body, ModelConfig(name=model, provider="fake", upstream=model), stream,
                        "req_flight")


async def test_consumers_of_a_real_provider_stream_share_one_upstream_request(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    provider = provider_for(fake_upstream, http_session)
    flight = Flight(await provider.open_stream(chat_call("gpt-4o-mini-drip-1")), keep_for_store=True)
    bodies = await asyncio.gather(*(collect(flight.subscribe()) for _ in range(3)))
    await finished(flight)
    assert len(fake_upstream.requests) == 1 and bodies[0] == bodies[1] == bodies[2]
    assert bodies[0].endswith(DONE_EVENT)
    chunks = [orjson.loads(part[6:]) for part in bodies[0].split(b"\n\n") if part.startswith(b"data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == DEFAULT_REPLY
    assert flight.cacheable and flight.usage is not None and flight.usage.completion_tokens > 0
    assert b"".join(flight.events) == bodies[0]
