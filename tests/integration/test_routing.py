"""Route policies through the whole gateway: rewrites, weighted splits, deployments, and what the ledger records.

The official SDK calls the gateway; the fake provider counts what reached it per upstream model.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.settings import Settings
from gateway.routing import split_target
from policies import RoutePolicy
from policies.loader import load_policies
from tests.fake_upstream import FakeUpstream
from tests.integration.harness import MESSAGES
from tests.integration.routing_harness import routed_gateway, routing_settings
from tests.integration.test_ledger_outcomes import cost_of, read_rows

TO_MINI = (
    "kind: route\nname: gpt-4o to mini\nmatch: {models: [gpt-4o], tools: false}\ntargets: [{model: gpt-4o-mini}]\n"
)
SPLIT = (
    "kind: route\nname: split\nmatch: {models: [gpt-4o]}\n"
    "targets: [{model: gpt-4o-mini, weight: 90}, {model: gpt-4o, weight: 10}]\n"
)
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]


async def chat(client: Any, model: str, request_id: str, **fields: Any) -> Any:
    """A raw SDK response (headers and parsed body) for one chat call with a fixed request id."""
    return await client.chat.completions.with_raw_response.create(
        model=model,
        messages=MESSAGES,
        extra_headers={"x-request-id": request_id},
        **fields,
    )


async def test_a_route_policy_rewrites_the_model_and_the_ledger_shows_the_saving(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured, ids = routing_settings(settings, tmp_path, fake_upstream), []
    async with routed_gateway(configured, fake_upstream, TO_MINI, ids) as gateway:
        client = gateway.client
        routed = await chat(client, "gpt-4o", "routed-1")
        assert routed.headers["x-netra-model"] == "gpt-4o-mini"
        assert fake_upstream.requests[-1].json["model"] == "gpt-4o-mini"
        with_tools = await chat(client, "gpt-4o", "tools-1", tools=TOOLS)  # the match excludes tool calls
        assert with_tools.headers["x-netra-model"] == "gpt-4o"
        usage = routed.parse().usage.model_dump()
    rows = read_rows(configured)
    row = rows["routed-1"]
    assert (row["requested_model"], row["served_model"], row["provider"]) == ("gpt-4o", "gpt-4o-mini", "fake")
    assert row["cost_usd"] == cost_of("gpt-4o-mini", usage)
    assert row["baseline_cost_usd"] == cost_of("gpt-4o", usage)
    assert row["savings_usd"] == row["baseline_cost_usd"] - row["cost_usd"] > Decimal(0)
    assert (row["savings_kind"], row["policy_id"], row["upstream_attempts"]) == ("route", ids[0], 1)
    untouched = rows["tools-1"]
    assert (untouched["served_model"], untouched["savings_kind"], untouched["savings_usd"]) == ("gpt-4o", "", 0)
    assert untouched["policy_id"] == ""


async def test_a_weighted_split_is_deterministic_per_request_id(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured, ids = routing_settings(settings, tmp_path, fake_upstream), []
    request_ids = [f"split-{n}" for n in range(100)]
    async with routed_gateway(configured, fake_upstream, SPLIT, ids) as gateway:
        client = gateway.client
        served = {rid: (await chat(client, "gpt-4o", rid)).headers["x-netra-model"] for rid in request_ids}
    (document,) = load_policies(SPLIT, "split.yaml")
    assert isinstance(document, RoutePolicy)
    policy = document.model_copy(update={"id": ids[0]})
    # Each request went where the policy's split sends its request id: the same id always goes the same way.
    assert served == {rid: split_target(policy, rid) for rid in request_ids}
    shares = sorted(list(served.values()).count(m) for m in ("gpt-4o", "gpt-4o-mini"))
    assert 0 < shares[0] < 30 and shares[1] > 70  # both targets get traffic, about 10/90
    rows = read_rows(configured)
    kept = [rows[rid] for rid in request_ids if served[rid] == "gpt-4o"]
    assert all(r["savings_kind"] == "" and r["policy_id"] == ids[0] for r in kept)
    moved = [rows[rid] for rid in request_ids if served[rid] == "gpt-4o-mini"]
    assert all(r["savings_kind"] == "route" and r["savings_usd"] > 0 for r in moved)


async def test_a_route_to_another_provider_is_translated(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    policy = "kind: route\nname: to claude\nmatch: {models: [gpt-4o]}\ntargets: [{model: claude-sonnet}]\n"
    configured = routing_settings(settings, tmp_path, fake_upstream)
    async with routed_gateway(configured, fake_upstream, policy) as gateway:
        raw = await chat(gateway.client, "gpt-4o", "to-claude-1")
    reply = raw.parse()
    assert raw.headers["x-netra-model"] == "claude-sonnet-4-5"
    assert fake_upstream.requests[-1].path == "/v1/messages"
    assert reply.object == "chat.completion" and reply.choices[0].message.content
    row = read_rows(configured)["to-claude-1"]
    assert (row["served_model"], row["provider"], row["savings_kind"]) == ("claude-sonnet-4-5", "fakeant", "route")
    assert row["savings_usd"] < 0  # Claude Sonnet costs more than gpt-4o: an honest negative saving


async def test_deployments_share_the_load_and_models_lists_the_name_once(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream)
    async with routed_gateway(configured, fake_upstream) as gateway:
        listed = [m["id"] for m in (await gateway.http.get("/v1/models", headers=gateway.auth())).json()["data"]]
        client = gateway.client
        await asyncio.gather(*(chat(client, "pool", f"pool-{n}") for n in range(4)))
    assert listed.count("pool") == 1
    # Four at once: each goes to the deployment with fewer requests in flight.
    assert (fake_upstream.calls("pool-a-slow-200"), fake_upstream.calls("pool-b-slow-200")) == (2, 2)
    rows = read_rows(configured)
    assert {rows[f"pool-{n}"]["provider"] for n in range(4)} == {"fake", "fake2"}
    assert all(rows[f"pool-{n}"]["savings_kind"] == "" for n in range(4))  # another deployment is no saving


async def test_a_failing_deployment_sends_its_traffic_to_the_other(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = routing_settings(settings, tmp_path, fake_upstream, breaker_failures=1, upstream_attempts=2)
    fake_upstream.fail("pool-a-slow-200", 500)
    async with routed_gateway(configured, fake_upstream) as gateway:
        client = gateway.client
        for n in range(4):
            assert (await chat(client, "pool", f"p-{n}")).headers["x-netra-model"] == "pool-b-slow-200"
    # One failure opened deployment a's breaker: the rest went straight to b.
    assert fake_upstream.calls("pool-a-slow-200") == 1
    assert fake_upstream.calls("pool-b-slow-200") == 4


async def test_a_request_sharing_a_routed_call_names_the_model_that_answered(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    policies = (
        "kind: cache\nname: deterministic\nttl: 1h\n---\n"
        "kind: route\nname: to the pool\nmatch: {models: [gpt-4o]}\ntargets: [{model: pool}]\n"
    )
    configured = routing_settings(settings, tmp_path, fake_upstream)
    async with routed_gateway(configured, fake_upstream, policies) as gateway:
        leader, follower = await asyncio.gather(
            chat(gateway.client, "gpt-4o", "share-1", temperature=0),
            chat(gateway.client, "gpt-4o", "share-2", temperature=0),
        )
    outcomes = sorted(r.headers["x-netra-cache"] for r in (leader, follower))
    assert (
        outcomes == ["coalesced", "miss"]
        and fake_upstream.calls("pool-a-slow-200") + fake_upstream.calls("pool-b-slow-200") == 1
    )
    served = {r.headers["x-netra-model"] for r in (leader, follower)}
    assert len(served) == 1 and served <= {"pool-a-slow-200", "pool-b-slow-200"}
    rows = read_rows(configured)
    assert rows["share-1"]["served_model"] == rows["share-2"]["served_model"] == served.pop()
