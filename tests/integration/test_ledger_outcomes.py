"""Every outcome of a call becomes exactly one ledger row, with the right status and money."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from core.prices import compute_cost, load_seed
from core.settings import Settings
from core.usage import Usage, estimate_tokens
from gateway.ledger import RowSink
from tests.fake_upstream import WIRES, FakeUpstream
from tests.fake_upstream_behaviour import DEFAULT_REPLY, tokens_for
from tests.integration.harness import MESSAGES, gateway_settings, make_tenants, serve, stored_rows
from tests.unit.helpers import assert_envelope

PRICES = load_seed()


def read_rows(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every row of llm_calls keyed by request id, after checking that none is there twice."""
    rows = stored_rows(settings)
    keyed = {row["request_id"]: row for row in rows}
    assert len(keyed) == len(rows), f"{len(rows) - len(keyed)} duplicated rows"
    return keyed


def cost_of(model: str, usage: dict[str, Any]) -> Decimal:
    """What a call with this OpenAI usage costs at the shipped prices (the client's own arithmetic)."""
    details = usage.get("prompt_tokens_details") or {}
    tokens = Usage(prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
                   cached_tokens=details.get("cached_tokens", 0))
    cost = compute_cost(tokens, PRICES.price_for(model)).usd
    assert cost is not None
    return cost


async def post(
    http: httpx.AsyncClient, rid: str, body: Any, key: str | None, path: str = "/v1/chat/completions", **kw: Any
) -> httpx.Response:
    headers = {"x-request-id": rid, **({"authorization": f"Bearer {key}"} if key else {})}
    if isinstance(body, bytes):
        return await http.post(path, content=body, headers=headers, **kw)
    return await http.post(path, json=body, headers=headers, **kw)


def chat(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **fields}


def client_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event name, data) of every event a client's SSE parser reads from the response; data is JSON or [DONE]."""
    events = []
    for block in response.text.split("\n\n"):
        lines = block.split("\n")
        name = next((line[7:] for line in lines if line.startswith("event: ")), "message")
        data = "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))
        if data:
            events.append((name, data if data == "[DONE]" else orjson.loads(data)))
    return events


async def cancel_after_first_chunk(http: httpx.AsyncClient, key: str) -> None:
    body = {"model": "drip", "messages": MESSAGES, "stream": True}
    headers = {"authorization": f"Bearer {key}", "x-request-id": "cancelled"}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        async for _ in response.aiter_bytes():
            break


async def drive_served_calls(http: httpx.AsyncClient, key: str) -> dict[str, httpx.Response]:
    """Calls the provider answers, each way a client can ask: their rows depend on reading the provider right."""
    usage = {"stream_options": {"include_usage": True}}
    return {
        "ok": await post(http, "ok", chat("gpt-4o-mini"), key),
        "cached": await post(http, "cached", chat("cached"), key),
        "claude-cached": await post(http, "claude-cached", chat("claude-cached"), key),
        "stream": await post(http, "stream", chat("gpt-4o-mini", stream=True), key),
        "stream-usage": await post(http, "stream-usage", chat("gpt-4o-mini", stream=True, **usage), key),
        "quiet": await post(http, "quiet", chat("quiet", stream=True), key),
        "quiet-json": await post(http, "quiet-json", chat("quiet"), key),
        "claude-quiet": await post(http, "claude-quiet", chat("claude-quiet", stream=True), key),
        "claude-quiet-json": await post(http, "claude-quiet-json", chat("claude-quiet"), key),
        "claude-stream": await post(http, "claude-stream", chat("claude", stream=True, **usage), key),
        "responses": await post(http, "responses", {"model": "gpt-4o-mini", "input": MESSAGES[0]["content"],
                                                     "stream": True}, key, "/v1/responses"),
        "responses-cut": await post(http, "responses-cut", {"model": "cut-short", "input": "Hi", "stream": True},
                                    key, "/v1/responses"),
    }


async def drive_every_outcome(http: httpx.AsyncClient, keys: dict[str, str]) -> dict[str, httpx.Response]:
    acme = keys["acme"]
    seen = await drive_served_calls(http, acme)
    seen |= {
        "broken": await post(http, "broken", chat("broken"), acme),
        "rejected": await post(http, "rejected", chat("rejected"), acme),
        "no-key": await post(http, "no-key", chat("gpt-4o-mini"), None),
        "bad-json": await post(http, "bad-json", b"{nope", acme),
        "no-model": await post(http, "no-model", chat("gpt-9"), acme),
        "timeout": await post(http, "timeout", chat("slow"), acme),
    }
    # The free tier's 100 calls an hour, used up by calls refused for their body (model listings are not counted).
    await asyncio.gather(*(post(http, rid, b"{nope", keys["tiny"]) for rid in FILLERS))
    seen["limited"] = await post(http, "limited", chat("gpt-4o-mini"), keys["tiny"])
    await cancel_after_first_chunk(http, acme)
    return seen


EXPECTED = {  # request id -> (status, http status, error code)
    "ok": ("ok", 200, ""), "cached": ("ok", 200, ""), "claude-cached": ("ok", 200, ""), "stream": ("ok", 200, ""),
    "stream-usage": ("ok", 200, ""), "quiet": ("ok", 200, ""), "claude-stream": ("ok", 200, ""),
    "quiet-json": ("ok", 200, ""), "claude-quiet": ("ok", 200, ""), "claude-quiet-json": ("ok", 200, ""),
    "responses": ("ok", 200, ""), "responses-cut": ("upstream_error", 200, "upstream_error"),
    "broken": ("upstream_error", 502, "upstream_error"),
    "rejected": ("upstream_rejected", 400, "invalid_value"), "no-key": ("auth_error", 401, "missing_api_key"),
    "bad-json": ("invalid_request", 400, "invalid_json"), "no-model": ("invalid_request", 404, "model_not_found"),
    "timeout": ("upstream_error", 504, "upstream_timeout"), "limited": ("rate_limited", 429, "rate_limit_exceeded"),
    "cancelled": ("client_cancelled", 499, ""),
}
FILLERS = {f"fill-{n}" for n in range(100)}
Rows = tuple[dict[str, dict[str, Any]], dict[str, httpx.Response]]


def module_settings(tmp_path_factory: pytest.TempPathFactory, chdb_dir: Path, name: str) -> tuple[Settings, Path]:
    """Settings as the `settings` fixture makes them, for a fixture that outlives one test; and its directory."""
    base = tmp_path_factory.mktemp(name)
    settings = Settings(
        data_dir=base / "data", clickhouse_url=f"chdb://{chdb_dir}", clickhouse_database=f"t_{uuid.uuid4().hex[:12]}",
        ledger_ingest="thread", _env_file=None,  # type: ignore[call-arg]
    )
    return settings, base


async def drive(settings: Settings, base: Path, wire: str, everything: bool) -> Rows:
    """Run a gateway before a fake provider writing in this wire layout, make the calls, return the rows."""
    async with FakeUpstream(wire=wire) as fake:
        settings = gateway_settings(settings, base, fake)
        keys, _ = await make_tenants(settings)
        async with serve(settings, {"FAKE_OPENAI_KEY": fake.api_key}) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                seen = await (drive_every_outcome(http, keys) if everything else drive_served_calls(http, keys["acme"]))
            await asyncio.sleep(0.2)  # let the cancelled stream's handler finish before shutdown
    return read_rows(settings), seen


# The rows only are shared by the tests of this module (read-only): one gateway run for all outcomes, and one per
# wire layout of the provider for the calls it answers.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ledger_rows(tmp_path_factory: pytest.TempPathFactory, chdb_dir: Path) -> Rows:
    settings, base = module_settings(tmp_path_factory, chdb_dir, "every-outcome")
    return await drive(settings, base, "compact", everything=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=WIRES)
async def served_rows(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, chdb_dir: Path) -> Rows:
    settings, base = module_settings(tmp_path_factory, chdb_dir, f"served-{request.param}")
    return await drive(settings, base, request.param, everything=False)


async def test_every_outcome_is_exactly_one_row(ledger_rows: Rows) -> None:
    rows, seen = ledger_rows
    assert set(rows) == set(EXPECTED) | FILLERS
    assert {rows[rid]["status"] for rid in FILLERS} == {"invalid_request"}
    for rid, (status, http_status, code) in EXPECTED.items():
        row = rows[rid]
        assert (row["status"], row["http_status"], row["error_code"]) == (status, http_status, code), rid
        if rid in seen:
            assert seen[rid].status_code == http_status, rid
    assert rows["cancelled"]["tokens_estimated"] and rows["cancelled"]["stream"]


def usage_chunk(response: httpx.Response) -> dict[str, Any]:
    """The one usage object in a stream the client asked usage for."""
    (usage,) = [data["usage"] for _, data in client_events(response) if isinstance(data, dict) and data.get("usage")]
    return usage


async def test_served_calls_cost_what_their_usage_says(served_rows: Rows) -> None:
    rows, seen = served_rows
    usages = {rid: seen[rid].json()["usage"] for rid in ("ok", "cached")}
    usages["stream-usage"] = usages["stream"] = usage_chunk(seen["stream-usage"])  # the same call, streamed
    for rid, usage in usages.items():
        row = rows[rid]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
        assert row["cached_prompt_tokens"] == usage["prompt_tokens_details"]["cached_tokens"], rid
        assert row["cost_usd"] == cost_of("gpt-4o-mini", usage) == row["baseline_cost_usd"], rid
        # netra.yaml prices the fake's model names like gpt-4o-mini: a local version on top of the seed's.
        assert row["savings_usd"] == 0 and row["price_version"].startswith(PRICES.version + "+local."), rid
        assert not row["tokens_estimated"], rid
    assert rows["cached"]["cached_prompt_tokens"] > 0
    assert rows["stream"]["completion_tokens"] == tokens_for(len(DEFAULT_REPLY))


async def test_anthropic_cache_tokens_are_priced_apart(ledger_rows: Rows) -> None:
    rows, seen = ledger_rows
    row, usage = rows["claude-cached"], seen["claude-cached"].json()["usage"]
    assert row["cached_prompt_tokens"] == 100 and row["cache_write_tokens"] == 20  # the fake's cache figures
    assert row["prompt_tokens"] == usage["prompt_tokens"]
    price = PRICES.price_for("claude-sonnet-4-5")
    assert price is not None and price.cached_input is not None and price.cache_write is not None
    uncached = row["prompt_tokens"] - 120
    expected = (uncached * price.input + 100 * price.cached_input + 20 * price.cache_write
                + row["completion_tokens"] * price.output)
    assert row["cost_usd"] == expected.quantize(Decimal("1e-9"))


async def test_streams_report_usage_or_say_it_was_estimated(served_rows: Rows) -> None:
    rows, seen = served_rows
    for rid in ("stream", "stream-usage", "claude-stream", "responses"):
        assert rows[rid]["completion_tokens"] > 0 and not rows[rid]["tokens_estimated"], rid
    claude = usage_chunk(seen["claude-stream"])
    assert (rows["claude-stream"]["prompt_tokens"], rows["claude-stream"]["completion_tokens"]) == (
        claude["prompt_tokens"], claude["completion_tokens"])
    (completed,) = [data for name, data in client_events(seen["responses"]) if name == "response.completed"]
    usage = completed["response"]["usage"]
    assert (rows["responses"]["prompt_tokens"], rows["responses"]["completion_tokens"]) == (
        usage["input_tokens"], usage["output_tokens"])
    # A provider that reports no usage: characters ÷ 4, rounded up (docs/ledger.md), for prompt and completion.
    # Streamed or not, relayed as sent or translated from Anthropic: never zero.
    for rid in ("quiet", "quiet-json", "claude-quiet", "claude-quiet-json"):
        quiet = rows[rid]
        assert quiet["tokens_estimated"] and quiet["cost_usd"] > 0, rid
        assert (quiet["prompt_tokens"], quiet["completion_tokens"]) == (
            estimate_tokens(len(MESSAGES[0]["content"])), estimate_tokens(len(DEFAULT_REPLY))), rid


async def test_streams_give_the_client_exactly_what_it_asked_for(served_rows: Rows) -> None:
    _, seen = served_rows
    for rid in ("stream", "quiet"):  # no include_usage: Netra asked the provider for usage, the client never sees it
        chunks = [data for _, data in client_events(seen[rid])[:-1]]
        assert all("usage" not in chunk and chunk["choices"] for chunk in chunks), rid
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == DEFAULT_REPLY, rid
    for rid in ("stream-usage", "claude-stream"):  # include_usage: the usage chunk exactly once, last
        events = client_events(seen[rid])
        with_usage = [data for _, data in events[:-1] if data.get("usage")]
        assert len(with_usage) == 1 and with_usage[0] is events[-2][1] and with_usage[0]["choices"] == [], rid
    for rid in ("stream", "quiet", "stream-usage", "claude-stream"):
        assert client_events(seen[rid])[-1] == ("message", "[DONE]"), rid


async def test_responses_stream_cut_before_completed_is_an_upstream_error(served_rows: Rows) -> None:
    rows, seen = served_rows
    names = [name for name, _ in client_events(seen["responses"])]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    events = client_events(seen["responses-cut"])
    assert "response.completed" not in {name for name, _ in events} and events[-1] == ("message", "[DONE]")
    assert_envelope(events[-2][1], type="server_error", code="upstream_error")
    row = rows["responses-cut"]
    assert (row["status"], row["error_code"], row["http_status"]) == ("upstream_error", "upstream_error", 200)
    assert row["tokens_estimated"] and row["completion_tokens"] > 0  # the text the client did receive


async def test_failed_and_rejected_calls_cost_nothing(ledger_rows: Rows) -> None:
    rows, _ = ledger_rows
    for rid in ("broken", "rejected", "no-key", "bad-json", "no-model", "limited", "timeout"):
        assert (rows[rid]["cost_usd"], rows[rid]["prompt_tokens"], rows[rid]["completion_tokens"]) == (0, 0, 0), rid
    assert rows["no-key"]["tenant_id"] == "" and rows["limited"]["tenant_name"] == "tiny"


class FlakySink:
    """The real ClickHouse store behind a switch that makes it fail, as an outage would."""

    def __init__(self, inner: RowSink) -> None:
        self.inner = inner
        self.down = True
        self.failures = 0

    def insert_rows(self, rows: Any, token: str) -> None:
        if self.down:
            self.failures += 1
            raise ConnectionError("clickhouse is down")
        self.inner.insert_rows(rows, token)

    async def run(self, fn: Any, *args: Any) -> Any:
        return await self.inner.run(fn, *args)


async def test_clickhouse_outage_under_load_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    settings = gateway_settings(settings, tmp_path, fake_upstream, ledger_batch_rows=50, ledger_flush_interval=0.05)
    keys, _ = await make_tenants(settings)
    sinks: list[FlakySink] = []

    def wrap(inner: RowSink) -> RowSink:
        sinks.append(FlakySink(inner))
        return sinks[-1]

    async with serve(settings, {"FAKE_OPENAI_KEY": fake_upstream.api_key}, wrap) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            body = {"model": "gpt-4o-mini", "messages": MESSAGES}
            for wave in range(6):
                replies = await asyncio.gather(*(post(http, f"w{wave}-{i}", body, keys["acme"]) for i in range(50)))
                assert all(r.status_code == 200 for r in replies)
            metrics = (await http.get("/metrics")).text
            assert sinks[0].failures > 0
            backlog = next(line for line in metrics.splitlines() if line.startswith("netra_ledger_backlog_rows "))
            assert float(backlog.split()[1]) > 0
            sinks[0].down = False
    rows = read_rows(settings)
    assert set(rows) == {f"w{wave}-{i}" for wave in range(6) for i in range(50)}


async def test_unwritable_spill_refuses_billable_calls(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    settings = gateway_settings(settings, tmp_path, fake_upstream)
    keys, _ = await make_tenants(settings)
    settings.spill_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.spill_dir.write_text("a file where the spill directory should be")
    async with serve(settings, {"FAKE_OPENAI_KEY": fake_upstream.api_key}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            reply = await post(http, "refused", {"model": "gpt-4o-mini", "messages": MESSAGES}, keys["acme"])
            ready = await http.get("/health/ready")
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "logging_unavailable" and reply.headers["retry-after"]
    assert ready.status_code == 503 and ready.json()["checks"]["ledger"] != "ok"
    assert fake_upstream.requests == [], "a call that cannot be recorded must not reach the provider"
