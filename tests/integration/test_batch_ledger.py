"""Batch results in the ledger: rows at batch prices, written with `finish` alone, and a repeat counted once."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from core.clickhouse import ClickHouseStore
from core.metrics import GatewayMetrics
from core.prices import compute_cost, load_seed
from core.settings import Settings
from core.usage import Usage
from gateway.batch_api.ledger import BatchRun, line_row, parse_lines, request_id_of
from gateway.ledger import LedgerWriter

PRICES = load_seed()
T0 = 1_764_000_000
RUN = BatchRun(
    batch_id="batch_abc", tenant_id="t-acme", tenant_name="acme", key_id="k-1", provider="fake",
    endpoint="chat/completions", received_us=T0 * 1_000_000, finished_us=(T0 + 90) * 1_000_000,
    lines={"ok-1": ["chat/completions", "mini", "gpt-4o-mini"], "bad-1": ["chat/completions", "mini", "gpt-4o-mini"],
           "odd-1": ["chat/completions", "house", "house-model-v1"]},
)


def result(custom_id: str, status: int = 200, usage: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
    if usage is not None:
        body["usage"] = usage
    return {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "error": None,
            "response": {"status_code": status, "request_id": "r", "body": body}}


def row(line: dict[str, Any]) -> dict[str, Any]:
    return line_row(line, RUN, PRICES, GatewayMetrics()).as_dict()


def test_a_served_line_costs_batch_prices_against_a_synchronous_baseline() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 400, "prompt_tokens_details": {"cached_tokens": 200}}
    got = row(result("ok-1", usage=usage, model="gpt-4o-mini-2024-07-18"))
    tokens = Usage(prompt_tokens=1000, completion_tokens=400, cached_tokens=200)
    price = PRICES.price_for("gpt-4o-mini")
    batch, regular = compute_cost(tokens, price, batch=True).usd, compute_cost(tokens, price).usd
    assert batch is not None and regular is not None and batch < regular
    assert (Decimal(got["cost_usd"]), Decimal(got["baseline_cost_usd"])) == (batch, regular)
    assert Decimal(got["savings_usd"]) == regular - batch
    assert got["savings_kind"] == "batch" and got["status"] == "ok" and got["http_status"] == 200
    assert (got["requested_model"], got["served_model"], got["endpoint"]) == ("mini", "gpt-4o-mini", "chat/completions")
    assert (got["prompt_tokens"], got["completion_tokens"], got["cached_prompt_tokens"]) == (1000, 400, 200)
    assert got["request_id"] == request_id_of("batch_abc", "ok-1") != request_id_of("batch_abd", "ok-1")
    assert (got["received_at"], got["finished_at"], got["latency_ms"]) == (RUN.received_us, RUN.finished_us, 90_000.0)


def test_a_failed_line_costs_nothing_and_says_why() -> None:
    line = result("bad-1", 400, error={"message": "bad", "type": "invalid_request_error", "code": "invalid_value"})
    got = row(line)
    assert (got["status"], got["http_status"], got["error_code"]) == ("upstream_rejected", 400, "invalid_value")
    assert (got["cost_usd"], got["baseline_cost_usd"], got["savings_usd"], got["savings_kind"]) == ("0", "0", "0", "")


def test_an_unpriced_model_is_cost_unknown_never_zero() -> None:
    got = row(result("odd-1", usage={"prompt_tokens": 10, "completion_tokens": 5}))
    assert (got["cost_usd"], got["baseline_cost_usd"], got["savings_kind"]) == (None, None, "")


def test_output_files_are_read_line_by_line_whatever_their_layout() -> None:
    content = b'{"custom_id": "a", "response": null}\r\n\r\n{"custom_id":"b"}\nnot json\n[1]\n'
    assert [line["custom_id"] for line in parse_lines(content)] == ["a", "b"]


async def test_rows_written_without_begin_land_once_even_when_written_twice(
    settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    """`finish` alone appends the finished row; an abandoned writer's replay makes no crash row of it."""
    settings = settings.model_copy(update={"ledger_flush_interval": 0.05})
    lines = [result(f"ok-{i}", usage={"prompt_tokens": 10, "completion_tokens": 5}) for i in range(3)]
    first = LedgerWriter(settings, clickhouse_store, CollectorRegistry())
    await first.start()
    for line in lines:
        first.finish(row(line))
    await first.abandon()  # killed before anything was noted: the next start replays the spill
    second = LedgerWriter(settings, clickhouse_store, CollectorRegistry())
    await second.start()
    for line in lines:  # the output read again after the crash writes the same rows again
        second.finish(row(line))
    await asyncio.wait_for(second.drain(), 20)
    await second.close(5)
    final = clickhouse_store.query("SELECT status, count() FROM llm_calls FINAL GROUP BY status")
    assert final == [("ok", 3)]  # no gateway_crash row, no duplicate
