"""The response cache end to end: the official SDK against two `netra run` processes sharing PostgreSQL and Redis.

A cache policy added and activated with `netra policies` while traffic flows takes effect in both processes within
2 seconds (Redis notices: the database poll is set far beyond that), the entries are shared through Redis, and
retiring the policy stops the hits. Provider calls are counted at the fake by a marker unique to each request.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
from redis import Redis
from redis.exceptions import RedisError

from tests.e2e.harness import Netra, make_netra

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN = os.environ.get("NETRA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NETRA_TEST_REDIS", "redis://127.0.0.1:6379/0")
# The promise: a policy change reaches every gateway process within this long.
WITHIN = 2.0
POLICY = """
kind: cache
name: deterministic chat for acme
priority: 10
match: {tenants: [acme], models: [gpt-4o-mini], endpoints: [chat/completions], temperature: {max: 0}}
ttl: 1m
"""


def unavailable(service: str, reason: object) -> None:
    """Skip, or fail in CI (where the services are part of the job)."""
    message = f"{service} is unreachable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration services are required)")
    pytest.skip(message)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database for this module, dropped afterwards."""
    name = f"netra_e2e_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN}", exc)
    host = POSTGRES_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
    yield f"postgresql+asyncpg://{host}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def redis_url() -> str:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        unavailable(f"Redis at {REDIS_URL}", exc)
    finally:
        client.close()
    return REDIS_URL


@dataclass
class Pair:
    """Two gateway processes on one database and one Redis, and an SDK client on each."""

    first: Netra
    second: Netra
    fake_url: str
    key: str
    clients: list[openai.OpenAI] = field(default_factory=list)

    def client(self, netra: Netra) -> openai.OpenAI:
        made = openai.OpenAI(base_url=netra.url, api_key=self.key, max_retries=0)
        self.clients.append(made)
        return made

    def policies(self, *args: str) -> str:
        return self.first.cli("policies", *args).stdout

    def provider_calls(self, marker: str) -> int:
        recorded = httpx.get(f"{self.fake_url}/_fake/requests", timeout=10).json()
        return sum(marker in r["body"] for r in recorded)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, fake_url: str, pg_url: str, redis_url: str) -> Iterator[Pair]:
    # A poll far beyond the deadline: only Redis notices can bring a change in within 2 s.
    shared = {"NETRA_DATABASE_URL": pg_url, "NETRA_REDIS_URL": redis_url, "NETRA_POLICY_POLL_INTERVAL": "60"}
    first, second = (make_netra(Path(tmp_path_factory.mktemp(n)), fake_url, **shared) for n in ("one", "two"))
    first.cli("migrate")
    first.cli("tenants", "create", "acme", "--tier", "enterprise")
    made = Pair(first, second, fake_url, first.cli("keys", "create", "--tenant", "acme").stdout.strip())
    try:
        first.start()
        second.start()
        yield made
    finally:
        for client in made.clients:
            client.close()
        for netra in (first, second):
            netra.shutdown()


def ask(client: openai.OpenAI, marker: str, temperature: float = 0, **fields: Any) -> tuple[str, str]:
    """(x-netra-cache, the answer's text) of a chat request carrying `marker` (deterministic by default)."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"marker {marker}"}], temperature=temperature,
        **fields,
    )
    return raw.headers["x-netra-cache"], raw.parse().choices[0].message.content or ""


def ask_streamed(client: openai.OpenAI, marker: str) -> tuple[str, str]:
    """The same, streamed through the SDK."""
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"marker {marker}"}], temperature=0, stream=True
    ) as raw:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
        return raw.headers["x-netra-cache"], text


def until(what: str, check: Callable[[], bool]) -> None:
    """Keep checking (each check is a request) until `check()` holds; fail after WITHIN seconds."""
    deadline = time.monotonic() + WITHIN
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WITHIN} s")
        time.sleep(0.05)


def outcome_is(client: openai.OpenAI, expected: str) -> Callable[[], bool]:
    """A check: a fresh request (a new marker each time: never cached) is answered with this outcome.

    `miss` is what a fresh request gets once a policy applies; `bypass` before and after.
    """
    return lambda: ask(client, uuid.uuid4().hex)[0] == expected


def traffic(client: openai.OpenAI) -> list[tuple[str, str]]:
    """Twenty fresh deterministic requests, one after the other."""
    return [ask(client, uuid.uuid4().hex) for _ in range(20)]


def test_a_policy_activated_while_traffic_flows_takes_effect_in_both_processes(pair: Pair, tmp_path: Path) -> None:
    one, two = pair.client(pair.first), pair.client(pair.second)
    assert ask(one, "before")[0] == ask(two, "before")[0] == "bypass"
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    (pid,) = pair.policies("add", str(path)).split()
    with ThreadPoolExecutor(2) as pool:  # traffic keeps flowing through both processes while the CLI activates
        flowing = [pool.submit(traffic, client) for client in (one, two)]
        pair.policies("activate", pid)
        until("the policy in the first process", outcome_is(one, "miss"))
        until("the policy in the second process", outcome_is(two, "miss"))
        for future in flowing:
            assert {o for o, _ in future.result()} <= {"bypass", "miss"}

    marker = uuid.uuid4().hex
    first = ask(one, marker)
    assert first[0] == "miss" and ask(two, marker) == ("hit", first[1])  # stored in the shared Redis
    assert ask_streamed(two, marker) == ("hit", first[1]) and pair.provider_calls(marker) == 1

    pair.policies("retire", pid)
    until("the retirement in the first process", outcome_is(one, "bypass"))
    until("the retirement in the second process", outcome_is(two, "bypass"))
    assert ask(one, marker)[0] == ask(two, marker)[0] == "bypass" and pair.provider_calls(marker) == 3


def test_sdk_requests_are_hits_the_second_time_and_concurrent_ones_make_one_call(pair: Pair, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    (pid,) = pair.policies("add", str(path)).split()
    pair.policies("activate", pid)
    one, two = pair.client(pair.first), pair.client(pair.second)
    until("the policy in the first process", outcome_is(one, "miss"))
    try:
        streamed = uuid.uuid4().hex
        assert [ask_streamed(one, streamed)[0], ask_streamed(one, streamed)[0], ask(one, streamed)[0]] == [
            "miss", "hit", "hit",
        ]
        burst = uuid.uuid4().hex
        with ThreadPoolExecutor(20) as pool:
            outcomes = list(pool.map(lambda _: ask(one, burst)[0], range(20)))
        assert pair.provider_calls(burst) == 1 and outcomes.count("miss") == 1
        assert set(outcomes) <= {"miss", "coalesced", "hit"}
        nondeterministic = uuid.uuid4().hex
        assert [ask(one, nondeterministic, temperature=0.5)[0] for _ in range(2)] == ["bypass", "bypass"]
        unstored = uuid.uuid4().hex
        assert ask(one, unstored, extra_headers={"x-netra-cache": "no-store"})[0] == "miss"
        assert ask(two, unstored)[0] == "miss" and ask(one, unstored)[0] == "hit"
    finally:
        pair.policies("retire", pid)
