"""Every outcome of a call becomes exactly one ledger row, with the right status and money."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.clickhouse import ClickHouseStore, open_client
from core.prices import compute_cost, load_seed
from core.settings import Settings
from core.usage import Usage
from gateway.ledger import RowSink
from tests.fake_upstream import FakeUpstream
from tests.integration.harness import MESSAGES, gateway_settings, make_tenants, serve

PRICES = load_seed()


def read_rows(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every row of llm_calls keyed by request id, after checking that none is there twice."""
    store = ClickHouseStore(open_client(settings.resolved_clickhouse_url, settings.clickhouse_database), embedded=True)
    try:
        (total, distinct), = store.query("SELECT count(), uniqExact(request_id) FROM llm_calls")
        assert total == distinct, f"{total - distinct} duplicated rows"
        names = [n for n, in store.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'llm_calls' "
            "ORDER BY position")]
        rows = store.query(f"SELECT {', '.join(names)} FROM llm_calls")
    finally:
        store.close()
    return {row[0]: dict(zip(names, row, strict=True)) for row in rows}


def cost_of(model: str, usage: dict[str, Any]) -> Decimal:
    """What a call with this OpenAI usage costs at the shipped prices (the client's own arithmetic)."""
    details = usage.get("prompt_tokens_details") or {}
    tokens = Usage(prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
                   cached_tokens=details.get("cached_tokens", 0))
    cost = compute_cost(tokens, PRICES.price_for(model)).usd
    assert cost is not None
    return cost


async def post(http: httpx.AsyncClient, rid: str, body: Any, key: str | None, **kw: Any) -> httpx.Response:
    headers = {"x-request-id": rid, **({"authorization": f"Bearer {key}"} if key else {})}
    if isinstance(body, bytes):
        return await http.post("/v1/chat/completions", content=body, headers=headers, **kw)
    return await http.post("/v1/chat/completions", json=body, headers=headers, **kw)


async def cancel_after_first_chunk(http: httpx.AsyncClient, key: str) -> None:
    body = {"model": "drip", "messages": MESSAGES, "stream": True}
    headers = {"authorization": f"Bearer {key}", "x-request-id": "cancelled"}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        async for _ in response.aiter_bytes():
            break


async def drive_every_outcome(http: httpx.AsyncClient, keys: dict[str, str]) -> dict[str, httpx.Response]:
    acme = keys["acme"]
    seen = {
        "ok": await post(http, "ok", {"model": "gpt-4o-mini", "messages": MESSAGES}, acme),
        "cached": await post(http, "cached", {"model": "cached", "messages": MESSAGES}, acme),
        "claude-cached": await post(http, "claude-cached", {"model": "claude-cached", "messages": MESSAGES}, acme),
        "stream": await post(http, "stream", {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}, acme),
        "quiet": await post(http, "quiet", {"model": "quiet", "messages": MESSAGES, "stream": True}, acme),
        "broken": await post(http, "broken", {"model": "broken", "messages": MESSAGES}, acme),
        "rejected": await post(http, "rejected", {"model": "rejected", "messages": MESSAGES}, acme),
        "no-key": await post(http, "no-key", {"model": "gpt-4o-mini", "messages": MESSAGES}, None),
        "bad-json": await post(http, "bad-json", b"{nope", acme),
        "no-model": await post(http, "no-model", {"model": "gpt-9", "messages": MESSAGES}, acme),
        "timeout": await post(http, "timeout", {"model": "slow", "messages": MESSAGES}, acme),
    }
    for _ in range(100):
        await http.get("/v1/models", headers={"authorization": f"Bearer {keys['tiny']}"})
    seen["limited"] = await post(http, "limited", {"model": "gpt-4o-mini", "messages": MESSAGES}, keys["tiny"])
    await cancel_after_first_chunk(http, acme)
    return seen


EXPECTED = {  # request id -> (status, http status, error code)
    "ok": ("ok", 200, ""), "cached": ("ok", 200, ""), "claude-cached": ("ok", 200, ""), "stream": ("ok", 200, ""),
    "quiet": ("ok", 200, ""), "broken": ("upstream_error", 502, "upstream_error"),
    "rejected": ("upstream_rejected", 400, "invalid_value"), "no-key": ("auth_error", 401, "missing_api_key"),
    "bad-json": ("invalid_request", 400, "invalid_json"), "no-model": ("invalid_request", 404, "model_not_found"),
    "timeout": ("upstream_error", 504, "upstream_timeout"), "limited": ("rate_limited", 429, "rate_limit_exceeded"),
    "cancelled": ("client_cancelled", 499, ""),
}


@pytest.fixture
async def ledger_rows(settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream) -> tuple[dict[str, Any], Any]:
    settings = gateway_settings(settings, tmp_path, fake_upstream)
    keys, _ = await make_tenants(settings)
    async with serve(settings, {"FAKE_OPENAI_KEY": fake_upstream.api_key}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            seen = await drive_every_outcome(http, keys)
        await asyncio.sleep(0.2)  # let the cancelled stream's handler finish before shutdown
    return read_rows(settings), seen


async def test_every_outcome_is_exactly_one_row(ledger_rows: tuple[dict[str, Any], Any]) -> None:
    rows, seen = ledger_rows
    assert set(rows) == set(EXPECTED)
    for rid, (status, http_status, code) in EXPECTED.items():
        row = rows[rid]
        assert (row["status"], row["http_status"], row["error_code"]) == (status, http_status, code), rid
        if rid in seen:
            assert seen[rid].status_code == http_status, rid


async def test_served_calls_cost_what_their_usage_says(ledger_rows: tuple[dict[str, Any], Any]) -> None:
    rows, seen = ledger_rows
    for rid in ("ok", "cached"):
        usage = seen[rid].json()["usage"]
        row = rows[rid]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
        assert row["cached_prompt_tokens"] == usage["prompt_tokens_details"]["cached_tokens"]
        assert row["cost_usd"] == cost_of("gpt-4o-mini", usage) == row["baseline_cost_usd"]
        # netra.yaml prices the fake's model names like gpt-4o-mini: a local version on top of the seed's.
        assert row["savings_usd"] == 0 and row["price_version"].startswith(PRICES.version + "+local.")
        assert not row["tokens_estimated"]
    assert rows["cached"]["cached_prompt_tokens"] > 0


async def test_anthropic_cache_tokens_are_priced_apart(ledger_rows: tuple[dict[str, Any], Any]) -> None:
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


async def test_streams_report_usage_or_say_it_was_estimated(ledger_rows: tuple[dict[str, Any], Any]) -> None:
    rows, _ = ledger_rows
    assert rows["stream"]["completion_tokens"] > 0 and not rows["stream"]["tokens_estimated"]
    assert rows["quiet"]["completion_tokens"] > 0 and rows["quiet"]["tokens_estimated"]
    assert rows["cancelled"]["tokens_estimated"] and rows["cancelled"]["stream"]


async def test_failed_and_rejected_calls_cost_nothing(ledger_rows: tuple[dict[str, Any], Any]) -> None:
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
