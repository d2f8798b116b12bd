"""The deferred lane's pure parts: the header rule, result translation, and the ledger row at batch prices."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from core.config import ModelConfig, ProviderConfig
from core.deferred_models import COMPLETED, EXPIRED, FAILED, DeferredRequest
from core.errors import InvalidParameter, UpstreamRejected
from core.prices import compute_cost, load_seed
from core.usage import Usage
from gateway.deferred.accept import check_deferrable
from gateway.deferred.anthropic_batches import result_outcome
from gateway.deferred.http import BatchHTTP
from gateway.deferred.openai_batches import AzureBatches, line_outcome
from gateway.deferred.rows import ledger_row
from gateway.providers.base import UpstreamCall
from gateway.providers.http import Timeouts

PRICES = load_seed()
RECEIVED_US = 1_764_000_000_000_000
DONE = datetime.fromtimestamp(RECEIVED_US / 1e6 + 3600.25, UTC)


def call(stream: bool = False) -> UpstreamCall:
    model = ModelConfig(name="gpt-4o-mini", provider="fake")
    return UpstreamCall("chat/completions", {"model": "gpt-4o-mini", "messages": []}, model, stream, "req_1")


@pytest.mark.parametrize("value", ["24h", "1d", "2d", "86400", " 48h ", "1440m"])
def test_a_delay_of_a_day_or_more_is_accepted(value: str) -> None:
    check_deferrable(value, call())
    assert value.strip()


@pytest.mark.parametrize("value", ["23h", "1h", "86399", "0", "", "soon", "24 hours", "-24h", "24x"])
def test_a_shorter_or_unreadable_delay_is_a_400_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        check_deferrable(value, call())
    assert (caught.value.status_code, caught.value.code, caught.value.param) == (400, "invalid_value", "x-netra-defer")


def test_a_stream_cannot_be_deferred() -> None:
    with pytest.raises(InvalidParameter) as caught:
        check_deferrable("24h", call(stream=True))
    assert (caught.value.code, caught.value.param) == ("invalid_value", "stream")


def test_an_openai_output_line_is_the_synchronous_body_with_its_usage() -> None:
    body = {"id": "chatcmpl-9", "object": "chat.completion", "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 4}}}
    outcome = line_outcome({"custom_id": "def_1", "response": {"status_code": 200, "body": body}, "error": None})
    assert outcome.status == COMPLETED and outcome.body == body
    assert outcome.usage == Usage(prompt_tokens=12, completion_tokens=7, cached_tokens=4)


def test_an_openai_error_line_is_the_providers_envelope_passed_through() -> None:
    error = {"error": {"message": "Invalid value for 'temperature'.", "type": "invalid_request_error",
                       "param": "temperature", "code": "invalid_value"}}
    outcome = line_outcome({"custom_id": "def_1", "response": {"status_code": 400, "body": error}})
    assert outcome.status == FAILED and isinstance(outcome.error, UpstreamRejected)
    assert outcome.error.status_code == 400 and outcome.error.envelope() == error


def test_an_openai_line_that_expired_says_so() -> None:
    outcome = line_outcome({"custom_id": "d", "response": None, "error": {"code": "batch_expired", "message": "x"}})
    assert outcome.status == EXPIRED and outcome.error is not None and outcome.error.code == "batch_expired"


def test_an_anthropic_result_is_translated_as_the_synchronous_adapter_answers() -> None:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 9, "output_tokens": 2, "cache_read_input_tokens": 3}}
    outcome = result_outcome({"type": "succeeded", "message": message}, "claude", 1_700_000_000)
    assert outcome.status == COMPLETED and outcome.body is not None
    assert outcome.body["object"] == "chat.completion" and outcome.body["model"] == "claude"
    assert outcome.body["choices"][0]["message"]["content"] == "Hi"
    assert outcome.body["choices"][0]["finish_reason"] == "stop"
    assert outcome.usage == Usage(prompt_tokens=12, completion_tokens=2, cached_tokens=3)


@pytest.mark.parametrize(
    ("result", "status", "code"),
    [
        ({"type": "errored", "error": {"type": "error", "error": {"type": "invalid_request_error",
                                                                   "message": "max_tokens: too large"}}}, 400, None),
        ({"type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": "boom"}}},
         502, "upstream_error"),
        ({"type": "canceled"}, 502, "upstream_error"),
        ({"type": "expired"}, 504, "batch_expired"),
    ],
)
def test_an_anthropic_failure_becomes_the_per_request_error(result: dict[str, Any], status: int, code: Any) -> None:
    outcome = result_outcome(result, "claude", 0)
    assert outcome.error is not None and outcome.status in (FAILED, EXPIRED)
    envelope = outcome.error.envelope()["error"]
    assert (outcome.error.status_code, envelope["code"]) == (status, code)


def finished(status: str = COMPLETED, model: str = "gpt-4o-mini", **fields: Any) -> DeferredRequest:
    values: dict[str, Any] = {
        "id": "def_1", "request_id": "req_abc", "tenant_id": "t_1", "tenant_name": "acme", "key_id": "k_1",
        "endpoint": "chat/completions", "requested_model": model, "provider": "fake", "upstream_model": model,
        "body": "{}", "policy_id": "pol_b", "policy_version": 3, "tags": ["nightly"], "request_hash": "h",
        "prompt_chars": 400, "status": status, "received_us": RECEIVED_US, "completed_at": DONE,
        "prompt_tokens": 1000, "completion_tokens": 500, "cached_tokens": 200, "cache_write_tokens": 0,
        "usage_reported": True, "error_status": 0, "error_code": "",
    }
    return DeferredRequest(**{**values, **fields})


def test_a_completed_row_is_priced_at_batch_rates_against_the_synchronous_baseline() -> None:
    row = ledger_row(finished(), PRICES)
    price = PRICES.price_for("gpt-4o-mini")
    assert price is not None and price.batch_input is not None and price.batch_output is not None
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=200)
    baseline = compute_cost(usage, price).usd
    assert baseline is not None
    # By hand: batch input and output prices; the cached read scaled like plain input.
    cached = (price.cached_input or price.input) * price.batch_input / price.input
    by_hand = 800 * price.batch_input + 200 * cached + 500 * price.batch_output
    assert Decimal(row.cost_usd or "nan") == by_hand.quantize(Decimal("0.000000001"))
    assert Decimal(row.baseline_cost_usd or "nan") == baseline
    assert Decimal(row.savings_usd) == baseline - Decimal(row.cost_usd or "nan") > 0
    assert (row.status, row.http_status, row.savings_kind, row.stream) == ("ok", 200, "batch", False)
    assert (row.request_id, row.received_at, row.policy_id, row.policy_version) == ("req_abc", RECEIVED_US, "pol_b", 3)
    assert row.latency_ms == pytest.approx(3_600_250.0) and row.price_version == PRICES.version
    assert row.tags == ["nightly"] and not row.tokens_estimated


def test_a_failed_row_costs_nothing_and_claims_no_saving() -> None:
    error = orjson.dumps({"error": {"message": "m", "type": "invalid_request_error", "param": None, "code": "x"}})
    row = ledger_row(finished(FAILED, error=error.decode(), error_status=400, error_code="x", prompt_tokens=0,
                              completion_tokens=0, cached_tokens=0, usage_reported=False), PRICES)
    assert (row.status, row.http_status, row.error_code) == ("upstream_rejected", 400, "x")
    assert (row.cost_usd, row.baseline_cost_usd, row.savings_usd, row.savings_kind) == ("0", "0", "0", "")
    expired_row = ledger_row(finished(EXPIRED, error_status=504, error_code="batch_expired", prompt_tokens=0,
                                      completion_tokens=0, cached_tokens=0), PRICES)
    assert (expired_row.status, expired_row.http_status) == ("upstream_error", 504)


def test_an_unpriced_model_has_unknown_cost_and_no_claimed_saving() -> None:
    row = ledger_row(finished(model="house-model"), PRICES)
    assert (row.cost_usd, row.baseline_cost_usd, row.savings_usd) == (None, None, "0")


def test_the_same_stored_request_always_gives_the_same_row() -> None:
    assert ledger_row(finished(), PRICES) == ledger_row(finished(), PRICES)


async def test_azure_batches_use_deployment_paths_with_the_api_version_and_key() -> None:
    config = ProviderConfig.model_validate({
        "name": "az", "kind": "azure", "base_url": "https://res.openai.azure.com", "api_key": "k-123",
        "api_version": "2025-01-01",
    })
    session = aiohttp.ClientSession()
    try:
        client = AzureBatches(config, BatchHTTP(session, Timeouts(1, 1, 1, 1), "az"))
        line = orjson.loads(client.line(finished(upstream_model="gpt-4o-deployment", body='{"model":"m","n":1}')))
    finally:
        await session.close()
    assert client.url("batches?limit=5") == "https://res.openai.azure.com/openai/batches?limit=5&api-version=2025-01-01"
    assert client.url("files") == "https://res.openai.azure.com/openai/files?api-version=2025-01-01"
    assert client.auth == {"api-key": "k-123"}
    assert line == {"custom_id": "def_1", "method": "POST", "url": "/chat/completions",
                    "body": {"model": "gpt-4o-deployment", "n": 1}}
