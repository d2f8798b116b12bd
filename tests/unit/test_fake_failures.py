"""Failures switched on and off at run time fail the way real providers do, and every call is counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fake_upstream import FakeUpstream

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
REPLY = "Hello from the fake upstream."
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-fake-key", "anthropic-version": "2023-06-01"}
ANTHROPIC_BODY = {"model": "claude-sonnet-4", "max_tokens": 16, "messages": MESSAGES}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def chat(client: openai.AsyncOpenAI, model: str = "gpt-4o-mini") -> str | None:
    completion = await client.chat.completions.create(model=model, messages=MESSAGES)
    return completion.choices[0].message.content


async def test_a_counted_failure_fails_that_many_requests_then_answers(
    client: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    fake.fail("gpt-4o-mini", 429, times=2, retry_after=3)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as raised:
            await chat(client)
        assert raised.value.response.headers["retry-after"] == "3"
        assert raised.value.code == "rate_limit_exceeded" and raised.value.type == "requests"
    assert await chat(client) == REPLY
    assert await chat(client, "gpt-4o") == REPLY
    assert (fake.calls("gpt-4o-mini"), fake.calls("gpt-4o"), fake.calls("o3-mini")) == (3, 1, 0)


async def test_an_open_failure_lasts_until_healed_and_only_for_its_model(
    client: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    fake.fail("gpt-4o-mini", 502)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError) as raised:
            await chat(client)
        assert raised.value.status_code == 502 and "retry-after" not in raised.value.response.headers
    assert await chat(client, "gpt-4o-mini-2024-07-18") == REPLY  # exact names, not substrings
    fake.heal("gpt-4o-mini")
    assert await chat(client) == REPLY
    assert fake.calls("gpt-4o-mini") == 4


async def test_heal_without_a_model_clears_every_failure(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.fail("gpt-4o-mini", 503)
    fake.fail("gpt-4o", 401)
    with pytest.raises(openai.AuthenticationError):
        await chat(client, "gpt-4o")
    fake.heal()
    assert (await chat(client), await chat(client, "gpt-4o")) == (REPLY, REPLY)


async def test_refused_requests_are_counted_without_using_up_a_failure(
    client: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    fake.fail("gpt-4o-mini", 429, times=1)
    with pytest.raises(openai.AuthenticationError):
        await chat(client.with_options(api_key="sk-wrong"))
    with pytest.raises(openai.RateLimitError):
        await chat(client)
    assert await chat(client) == REPLY
    assert fake.calls("gpt-4o-mini") == 3


async def test_reset_forgets_calls_but_keeps_failures(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.fail("gpt-4o-mini", 500)
    with pytest.raises(openai.InternalServerError):
        await chat(client)
    fake.reset()
    assert fake.calls("gpt-4o-mini") == 0
    with pytest.raises(openai.InternalServerError):
        await chat(client)
    assert fake.calls("gpt-4o-mini") == 1 and len(fake.requests) == 1


async def test_anthropic_failures_use_anthropics_envelope_and_retry_headers(
    fake: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    fake.fail("claude-sonnet-4", 529, times=1, retry_after=when, retry_after_ms=1500)
    async with http.post(fake.url + "/v1/messages", json=ANTHROPIC_BODY, headers=ANTHROPIC_HEADERS) as response:
        assert response.status == 529
        assert response.headers["retry-after"] == "Wed, 02 Jan 2030 03:04:05 GMT"
        assert response.headers["retry-after-ms"] == "1500"
        overloaded = {"type": "overloaded_error", "message": "Overloaded"}
        assert await response.json() == {"type": "error", "error": overloaded}
    fake.fail("claude-sonnet-4", 429, times=1, retry_after="soon")
    async with http.post(fake.url + "/v1/messages", json=ANTHROPIC_BODY, headers=ANTHROPIC_HEADERS) as response:
        assert (response.status, response.headers["retry-after"]) == (429, "soon")
        assert (await response.json())["error"]["type"] == "rate_limit_error"
    async with http.post(fake.url + "/v1/messages", json=ANTHROPIC_BODY, headers=ANTHROPIC_HEADERS) as response:
        assert response.status == 200 and (await response.json())["type"] == "message"
    assert fake.calls("claude-sonnet-4") == 3


async def test_azure_deployments_fail_by_deployment_name(fake: FakeUpstream) -> None:
    fake.fail("prod-gpt4o", 429, times=1, retry_after=0.5)
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake.url, api_key=fake.api_key, api_version="2024-10-21", max_retries=0
    ) as azure:
        with pytest.raises(openai.RateLimitError) as raised:
            await chat(azure, "prod-gpt4o")
        assert raised.value.response.headers["retry-after"] == "0.5"
        assert await chat(azure, "prod-gpt4o") == REPLY
    assert fake.calls("prod-gpt4o") == 2


async def test_reset_closes_the_connection_without_an_answer(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.fail("gpt-4o-mini", "reset", times=1)
    with pytest.raises(openai.APIConnectionError):
        await chat(client)
    assert await chat(client) == REPLY
    assert fake.calls("gpt-4o-mini") == 2


async def test_hang_never_answers_until_the_client_gives_up(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.fail("gpt-4o-mini", "hang", times=1)
    with pytest.raises(openai.APITimeoutError):
        await client.with_options(timeout=0.2).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert await chat(client) == REPLY


async def test_a_hang_still_open_is_let_go_when_the_fake_stops(http: aiohttp.ClientSession) -> None:
    fake = FakeUpstream()
    await fake.start()
    fake.fail("gpt-4o-mini", "hang")
    headers = {"authorization": f"Bearer {fake.api_key}"}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    pending = asyncio.create_task(http.post(fake.url + "/v1/chat/completions", json=body, headers=headers))
    await wait_for(lambda: fake.calls("gpt-4o-mini") == 1)
    assert not pending.done()
    await fake.stop()
    response = await pending
    assert response.status == 503
    response.release()


async def test_midstream_sends_the_first_chunk_then_drops_the_stream(
    client: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    fake.fail("gpt-4o-mini", "midstream", times=1)
    received = []
    with pytest.raises(openai.APIConnectionError):
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        async for chunk in stream:
            received.append(chunk)
    assert received and received[0].choices[0].delta.role == "assistant"
    assert fake.completed_streams == 0
    assert await chat(client) == REPLY


async def test_midstream_cuts_a_json_answer_short(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.fail("gpt-4o-mini", "midstream", times=1)
    with pytest.raises(openai.APIConnectionError):
        await chat(client)
    assert await chat(client) == REPLY


async def test_failures_are_switched_over_http_too(
    client: openai.AsyncOpenAI, fake: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    switch = {"model": "gpt-4o-mini", "mode": 503, "times": 2, "retry_after": 7, "retry_after_ms": 7000}
    async with http.post(fake.url + "/_fake/failures", json=switch) as response:
        assert response.status == 200
    async with http.get(fake.url + "/_fake/failures") as response:
        listed = await response.json()
    assert listed == {"gpt-4o-mini": {"mode": 503, "times": 2, "retry-after": "7", "retry-after-ms": "7000"}}
    with pytest.raises(openai.InternalServerError) as raised:
        await chat(client)
    assert raised.value.response.headers["retry-after-ms"] == "7000"
    async with http.delete(fake.url + "/_fake/failures") as response:
        assert response.status == 200
    assert await chat(client) == REPLY
    async with http.get(fake.url + "/_fake/calls") as response:
        assert await response.json() == {"gpt-4o-mini": 2}


@pytest.mark.parametrize(
    "switch",
    [
        {"model": "m", "mode": "explode"},
        {"model": "m", "mode": 200},
        {"mode": 500},
        {"model": "m", "mode": 500, "times": 0},
    ],
)
async def test_a_switch_that_makes_no_sense_is_refused(
    fake: FakeUpstream, http: aiohttp.ClientSession, switch: dict[str, object]
) -> None:
    async with http.post(fake.url + "/_fake/failures", json=switch) as response:
        assert response.status == 400 and (await response.json())["ok"] is False
    async with http.post(fake.url + "/_fake/failures", data=b"not json") as response:
        assert response.status == 400
    with pytest.raises(ValueError, match="unknown failure mode"):
        fake.fail("m", "explode")
    assert fake.state.failures.failures == {}


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll until the condition holds (bounded by the test run's own timeout, not a timed assertion)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")
