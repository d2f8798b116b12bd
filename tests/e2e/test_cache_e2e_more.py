"""More of the response cache end to end: the official SDK against `netra run`, the fake provider behind.

What tests/e2e/test_cache_e2e.py leaves to this module: an entry is never served to another tenant, a
non-deterministic request is cached only by a policy that says so, errors and cut streams are never stored,
`x-netra-cache: no-cache` skips the lookup but still stores, and a process whose Redis goes away mid-run keeps serving.
Two processes share PostgreSQL and Redis; the second reaches Redis through a loopback door
(tests/integration/redis_door.py) that a test shuts: the real Redis server is never stopped. Provider calls are
counted at the fake by a marker unique to each request.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import openai
import pytest

from tests.e2e.harness import Netra, make_netra
from tests.e2e.test_cache_e2e import pg_url, redis_url  # noqa: F401 - module fixtures: PostgreSQL and Redis, CI fails
from tests.integration.redis_door import Mode, RedisDoor

T = TypeVar("T")
# The general policy caches deterministic chat for everyone; gamma's, of higher priority, caches any chat of gamma.
POLICIES = """
kind: cache
name: deterministic chat, every tenant
priority: 1
match: {endpoints: [chat/completions]}
ttl: 1m
---
kind: cache
name: all chat of gamma
priority: 10
match: {tenants: [gamma], endpoints: [chat/completions]}
ttl: 1m
cache_nondeterministic: true
"""
TENANTS = ("acme", "beta", "gamma")
# A bound on waiting for the cache to come back after Redis does: the outage pause doubles up to 30 s.
RECOVERY_BOUND = 45.0


class ThreadedDoor:
    """A RedisDoor served by an event loop on a thread of its own, for these synchronous tests."""

    def __init__(self, target_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.door = RedisDoor(target_url)

    @property
    def url(self) -> str:
        """The Redis URL through the door."""
        return self.door.url

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    async def _set(self, mode: Mode) -> None:
        self.door.set(mode)  # on the door's loop: it closes the connections it holds

    def set(self, mode: Mode) -> None:
        """Open, shut (Redis down) or jam the door."""
        self._run(self._set(mode))

    def __enter__(self) -> ThreadedDoor:
        self.thread.start()
        self._run(self.door.__aenter__())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._run(self.door.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


@dataclass
class Gateways:
    """Two gateway processes on one database and one Redis (the second through the door), a key per tenant."""

    direct: Netra
    doored: Netra
    door: ThreadedDoor
    fake_url: str
    keys: dict[str, str]
    clients: list[openai.OpenAI] = field(default_factory=list)

    def client(self, netra: Netra, tenant: str = "acme") -> openai.OpenAI:
        made = openai.OpenAI(base_url=netra.url, api_key=self.keys[tenant], max_retries=0)
        self.clients.append(made)
        return made

    def provider_calls(self, marker: str) -> int:
        recorded = httpx.get(f"{self.fake_url}/_fake/requests", timeout=10).json()
        return sum(marker in r["body"] for r in recorded)

    def bypass_count(self, netra: Netra) -> float:
        """`netra_cache_bypass_total` of a process, every reason summed."""
        text = httpx.get(f"http://127.0.0.1:{netra.port}/metrics", timeout=10).text
        lines = [line for line in text.splitlines() if line.startswith("netra_cache_bypass_total")]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def prepare(netra: Netra, tmp: Path) -> dict[str, str]:
    """Migrate, make the tenants and their keys, add and activate the policies (before any process starts)."""
    netra.cli("migrate")
    keys = {}
    for tenant in TENANTS:
        netra.cli("tenants", "create", tenant, "--tier", "enterprise")
        keys[tenant] = netra.cli("keys", "create", "--tenant", tenant).stdout.strip()
    path = tmp / "policies.yaml"
    path.write_text(POLICIES)
    for pid in netra.cli("policies", "add", str(path)).stdout.split():
        netra.cli("policies", "activate", pid)
    return keys


@pytest.fixture(scope="module")
def gateways(
    tmp_path_factory: pytest.TempPathFactory, fake_url: str, pg_url: str, redis_url: str  # noqa: F811
) -> Iterator[Gateways]:
    with ThreadedDoor(redis_url) as door:
        direct, doored = (
            make_netra(Path(tmp_path_factory.mktemp(name)), fake_url, NETRA_DATABASE_URL=pg_url, NETRA_REDIS_URL=url)
            for name, url in (("direct", redis_url), ("doored", door.url))
        )
        made = Gateways(direct, doored, door, fake_url, prepare(direct, Path(tmp_path_factory.mktemp("policies"))))
        try:
            direct.start()
            doored.start()
            yield made
        finally:
            for client in made.clients:
                client.close()
            for netra in (direct, doored):
                netra.shutdown()


@dataclass(frozen=True)
class Answer:
    """What the client saw: the `x-netra-cache` header, the answer's id and its text."""

    outcome: str
    id: str
    text: str


def ask(client: openai.OpenAI, marker: str, model: str = "gpt-4o-mini", **fields: Any) -> Answer:
    """A chat request carrying `marker`, deterministic (temperature 0) unless `fields` say otherwise."""
    fields.setdefault("temperature", 0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": f"marker {marker}"}], **fields
    )
    answer = raw.parse()
    return Answer(raw.headers["x-netra-cache"], answer.id, answer.choices[0].message.content or "")


def ask_streamed(client: openai.OpenAI, marker: str, **fields: Any) -> Answer:
    """The same, streamed through the SDK (the id is the first chunk's)."""
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"marker {marker}"}], temperature=0, stream=True,
        **fields,
    ) as raw:
        chunks = list(raw.parse())
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        return Answer(raw.headers["x-netra-cache"], chunks[0].id, text)


def eventually(what: str, check: Callable[[], bool], bound: float = RECOVERY_BOUND) -> None:
    """Keep checking (each check is a request) until `check()` holds; fail after `bound` seconds."""
    deadline = time.monotonic() + bound
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {bound} s")
        time.sleep(0.2)


def fails(client: openai.OpenAI, marker: str, model: str) -> int:
    """A request the provider fails: the SDK raises; returns the status the client got."""
    with pytest.raises(openai.APIStatusError) as failure:
        ask(client, marker, model=model)
    return failure.value.status_code


def cut(client: openai.OpenAI, marker: str, model: str) -> str:
    """A stream the provider cuts: the SDK raises on the gateway's error event; returns `x-netra-cache`."""
    with client.chat.completions.with_streaming_response.create(
        model=model, messages=[{"role": "user", "content": f"marker {marker}"}], temperature=0, stream=True
    ) as raw:
        with pytest.raises(openai.APIError):
            for _ in raw.parse():
                pass
        return raw.headers["x-netra-cache"]


def test_another_tenants_identical_request_is_a_miss(gateways: Gateways) -> None:
    acme, beta = gateways.client(gateways.direct, "acme"), gateways.client(gateways.direct, "beta")
    marker = uuid.uuid4().hex
    first = ask(acme, marker)
    other = ask(beta, marker)
    assert (first.outcome, other.outcome) == ("miss", "miss") and other.id != first.id
    assert gateways.provider_calls(marker) == 2
    # Each tenant now has its own entry, in both processes (Redis is shared), and is served its own answer only.
    assert ask(beta, marker) == Answer("hit", other.id, other.text)
    assert ask(gateways.client(gateways.doored, "acme"), marker) == Answer("hit", first.id, first.text)
    assert ask_streamed(gateways.client(gateways.doored, "beta"), marker) == Answer("hit", other.id, other.text)
    assert gateways.provider_calls(marker) == 2


def test_a_nondeterministic_request_is_cached_only_by_a_policy_that_says_so(gateways: Gateways) -> None:
    acme, gamma = gateways.client(gateways.direct, "acme"), gateways.client(gateways.direct, "gamma")
    unpinned = uuid.uuid4().hex
    assert [ask(acme, unpinned, temperature=0.7).outcome for _ in range(2)] == ["bypass", "bypass"]
    assert gateways.provider_calls(unpinned) == 2
    # A seed makes the same request deterministic: the general policy caches it.
    seeded = uuid.uuid4().hex
    assert [ask(acme, seeded, temperature=0.7, seed=7).outcome for _ in range(2)] == ["miss", "hit"]
    # gamma's policy says `cache_nondeterministic: true`.
    flagged = uuid.uuid4().hex
    assert [ask(gamma, flagged, temperature=0.7).outcome for _ in range(2)] == ["miss", "hit"]
    assert gateways.provider_calls(seeded) == gateways.provider_calls(flagged) == 1


def test_an_error_is_not_cached(gateways: Gateways) -> None:
    acme = gateways.client(gateways.direct)
    marker = uuid.uuid4().hex
    status = fails(acme, marker, "broken-500")
    calls = gateways.provider_calls(marker)  # the attempts one request makes (the gateway may retry a 500)
    assert status >= 500 and calls >= 1
    # The general policy matches this model: a stored error would be replayed without asking the provider. (How
    # many attempts each request makes depends on the deployment's retry budget, shared with earlier tests.)
    assert fails(acme, marker, "broken-500") == status and gateways.provider_calls(marker) > calls


@pytest.mark.parametrize("model", ["cut-short", "midstream"])
def test_a_cut_stream_is_not_cached(gateways: Gateways, model: str) -> None:
    acme = gateways.client(gateways.direct)
    marker = uuid.uuid4().hex
    assert cut(acme, marker, model) == "miss"
    assert gateways.provider_calls(marker) == 1
    assert cut(acme, marker, model) == "miss"
    assert gateways.provider_calls(marker) == 2


def test_no_cache_skips_the_lookup_but_stores_the_fresh_answer(gateways: Gateways) -> None:
    acme = gateways.client(gateways.direct)
    marker = uuid.uuid4().hex
    first = ask(acme, marker)
    fresh = ask(acme, marker, extra_headers={"x-netra-cache": "no-cache"})
    assert (first.outcome, fresh.outcome) == ("miss", "miss") and fresh.id != first.id
    assert gateways.provider_calls(marker) == 2
    # The fresh answer replaced the first one, for every process.
    assert ask(acme, marker) == Answer("hit", fresh.id, fresh.text)
    assert ask(gateways.client(gateways.doored), marker) == Answer("hit", fresh.id, fresh.text)
    assert gateways.provider_calls(marker) == 2


def test_with_redis_stopped_mid_run_requests_are_still_served(gateways: Gateways) -> None:
    doored, direct = gateways.client(gateways.doored), gateways.client(gateways.direct)
    marker = uuid.uuid4().hex
    stored = ask(doored, marker)
    assert stored.outcome == "miss" and ask(doored, marker).outcome == "hit"
    bypassed = gateways.bypass_count(gateways.doored)
    gateways.door.set("down")
    try:
        plain, streamed = ask(doored, marker), ask_streamed(doored, marker)
        assert (plain.outcome, streamed.outcome) == ("bypass", "bypass")
        assert plain.text == streamed.text == stored.text != "" and plain.id != stored.id
        assert ask(doored, uuid.uuid4().hex).outcome == "bypass"
        assert gateways.provider_calls(marker) == 3
        assert gateways.bypass_count(gateways.doored) == bypassed + 3
        assert ask(direct, marker) == Answer("hit", stored.id, stored.text)  # only the door was shut
    finally:
        gateways.door.set("open")
    eventually("the cache back in use after Redis", lambda: ask(doored, uuid.uuid4().hex).outcome == "miss")
    assert ask(doored, marker) == Answer("hit", stored.id, stored.text)
