"""The fake's Anthropic Message Batches: create, retrieve, results, cancel, list, delete and their errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fake_upstream import FakeUpstream

HEADERS = {"x-api-key": "sk-ant-fake-key", "anthropic-version": "2023-06-01"}
BATCHES = "/v1/messages/batches"


@pytest.fixture
async def http(fake: FakeUpstream) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=fake.url, headers=HEADERS) as session:
        yield session


def item(custom_id: str, model: str = "claude-sonnet-4", text: str = "Hi", **params: Any) -> dict[str, Any]:
    body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}], **params}
    return {"custom_id": custom_id, "params": body}


async def call(http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, path, **kwargs) as response:
        raw = await response.read()
        return response.status, (orjson.loads(raw) if response.content_type == "application/json" else raw)


async def create(http: aiohttp.ClientSession, items: list[dict[str, Any]]) -> dict[str, Any]:
    status, batch = await call(http, "POST", BATCHES, json={"requests": items})
    assert status == 200, batch
    return dict(batch)


async def results(http: aiohttp.ClientSession, batch_id: str) -> dict[str, dict[str, Any]]:
    status, raw = await call(http, "GET", f"{BATCHES}/{batch_id}/results")
    assert status == 200, raw
    return {record["custom_id"]: record["result"] for record in map(orjson.loads, raw.splitlines())}


async def test_a_batch_ends_with_succeeded_and_errored_results(http: aiohttp.ClientSession, fake: FakeUpstream) -> None:
    items = [item("ok", text="echo: yes"), item("bad-model", model="claude-error-400"), item("no-max")]
    del items[2]["params"]["max_tokens"]
    batch = await create(http, items)
    assert batch["id"].startswith("msgbatch_") and batch["type"] == "message_batch"
    assert batch["processing_status"] == "in_progress" and batch["results_url"] is None and batch["ended_at"] is None
    assert batch["request_counts"] == {"processing": 3, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    created = datetime.fromisoformat(batch["created_at"])
    assert datetime.fromisoformat(batch["expires_at"]) - created == timedelta(hours=24)
    status, ended = await call(http, "GET", f"{BATCHES}/{batch['id']}")
    assert status == 200 and ended["processing_status"] == "ended" and ended["ended_at"]
    assert ended["results_url"] == f"{fake.url}{BATCHES}/{batch['id']}/results"
    assert ended["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 2, "canceled": 0, "expired": 0}
    found = await results(http, batch["id"])
    assert found["ok"]["type"] == "succeeded" and found["ok"]["message"]["content"][0]["text"] == "yes"
    assert found["ok"]["message"]["type"] == "message" and found["ok"]["message"]["usage"]["output_tokens"] >= 1
    for failed in ("bad-model", "no-max"):
        assert found[failed]["type"] == "errored"
        assert found[failed]["error"]["type"] == "error"
        assert found[failed]["error"]["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in found["no-max"]["error"]["error"]["message"]
    assert fake.requests[0].path == BATCHES and batch["id"] in fake.batches


async def test_results_wait_for_the_batch_to_end(http: aiohttp.ClientSession, fake: FakeUpstream) -> None:
    fake.batch_delay = 3600
    batch = await create(http, [item("a")])
    status, refused = await call(http, "GET", f"{BATCHES}/{batch['id']}/results")
    assert status == 400 and refused["error"]["type"] == "invalid_request_error"
    assert (await call(http, "GET", f"{BATCHES}/{batch['id']}"))[1]["processing_status"] == "in_progress"
    fake.complete_batches()
    assert (await results(http, batch["id"]))["a"]["type"] == "succeeded"


async def test_cancelling_ends_the_batch_with_every_request_canceled(
    http: aiohttp.ClientSession, fake: FakeUpstream
) -> None:
    fake.hold_batches()
    batch = await create(http, [item("a"), item("b")])
    status, canceling = await call(http, "POST", f"{BATCHES}/{batch['id']}/cancel")
    assert status == 200 and canceling["processing_status"] == "canceling" and canceling["cancel_initiated_at"]
    status, ended = await call(http, "GET", f"{BATCHES}/{batch['id']}")
    assert ended["processing_status"] == "ended" and ended["request_counts"]["canceled"] == 2
    assert {result["type"] for result in (await results(http, batch["id"])).values()} == {"canceled"}
    status, refused = await call(http, "POST", f"{BATCHES}/{batch['id']}/cancel")
    assert status == 400 and refused["error"]["type"] == "invalid_request_error"


async def test_unknown_batches_are_anthropic_404s(http: aiohttp.ClientSession) -> None:
    for method, path in (("GET", ""), ("GET", "/results"), ("POST", "/cancel"), ("DELETE", "")):
        status, body = await call(http, method, f"{BATCHES}/msgbatch_nope{path}")
        assert status == 404 and body["type"] == "error" and body["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    "requests",
    [[], "nope", [{"custom_id": "a"}], [item("same"), item("same")], [item("has space")]],
)
async def test_malformed_batches_are_refused(http: aiohttp.ClientSession, fake: FakeUpstream, requests: Any) -> None:
    status, body = await call(http, "POST", BATCHES, json={"requests": requests})
    assert status == 400 and body["error"]["type"] == "invalid_request_error" and fake.batches == {}


async def test_a_wrong_key_is_refused(fake: FakeUpstream) -> None:
    async with aiohttp.ClientSession(base_url=fake.url) as http:
        status, body = await call(http, "POST", BATCHES, json={"requests": [item("a")]}, headers={"x-api-key": "x"})
    assert status == 401 and body["error"]["type"] == "authentication_error" and fake.batches == {}


async def test_listing_pages_newest_first_and_deleting_an_ended_batch(
    http: aiohttp.ClientSession, fake: FakeUpstream
) -> None:
    fake.hold_batches()
    ids = [(await create(http, [item("a")]))["id"] for _ in range(3)]
    status, first = await call(http, "GET", BATCHES, params={"limit": "2"})
    assert [batch["id"] for batch in first["data"]] == ids[:0:-1] and first["has_more"] is True
    assert first["first_id"] == ids[2] and first["last_id"] == ids[1]
    status, rest = await call(http, "GET", BATCHES, params={"after_id": first["last_id"]})
    assert [batch["id"] for batch in rest["data"]] == [ids[0]] and rest["has_more"] is False
    status, newer = await call(http, "GET", BATCHES, params={"before_id": ids[0], "limit": "1"})
    assert [batch["id"] for batch in newer["data"]] == [ids[1]] and newer["has_more"] is True
    status, refused = await call(http, "DELETE", f"{BATCHES}/{ids[0]}")
    assert status == 400 and "in progress" in refused["error"]["message"]
    fake.complete_batches()
    status, deleted = await call(http, "DELETE", f"{BATCHES}/{ids[0]}")
    assert (status, deleted) == (200, {"id": ids[0], "type": "message_batch_deleted"})
    assert ids[0] not in fake.batches


@pytest.mark.parametrize("wire", ["spaced", "crlf"])
async def test_results_vary_on_the_wire(wire: str) -> None:
    async with FakeUpstream(wire=wire) as fake, aiohttp.ClientSession(base_url=fake.url, headers=HEADERS) as http:
        batch = await create(http, [item("a"), item("b")])
        fake.complete_batches()
        status, raw = await call(http, "GET", f"{BATCHES}/{batch['id']}/results")
    assert status == 200 and raw.count(b"\r\n") == (2 if wire == "crlf" else 0)
    assert (b'": ' in raw) == (wire == "spaced")
    assert [orjson.loads(line)["custom_id"] for line in raw.splitlines()] == ["b", "a"]
