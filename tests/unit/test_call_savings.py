"""Money on a finished call's ledger row: what a cache hit or a coalesced call saved, and who gets the credit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.metrics import GatewayMetrics
from core.prices import load_seed
from core.usage import Usage
from gateway.calls import finish_row
from gateway.context import CallContext

PRICES = load_seed()
MINI = PRICES.price_for("gpt-4o-mini")
assert MINI is not None and MINI.cached_input is not None
# 1,000 prompt tokens of which 200 read from the provider's prompt cache, 500 completion tokens, by hand.
LIST_PRICE = 800 * MINI.input + 200 * MINI.cached_input + 500 * MINI.output


def call(**fields: Any) -> CallContext:
    """A chat call for gpt-4o-mini that went upstream and was answered, with `fields` set on its context."""
    ctx = CallContext("req-2", "POST", "/v1/chat/completions")
    ctx.tenant_id, ctx.tenant_name, ctx.key_id, ctx.provider, ctx.status = "t1", "acme", "k1", "openai", 200
    ctx.requested_model = ctx.served_model = "gpt-4o-mini"
    ctx.upstream_called = True
    ctx.usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=200)
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


def reused(kind: str, outcome: str, **fields: Any) -> CallContext:
    """A call answered with another request's answer (a cache hit or a coalesced follower) under policy pol-1 v3."""
    acted = {"policy_id": "pol-1", "policy_version": 3, "reused_request_id": "req-1", "upstream_called": False}
    return call(cache_outcome=outcome, savings_kind=kind, **(acted | fields))


def row_of(ctx: CallContext, metrics: GatewayMetrics | None = None) -> dict[str, Any]:
    return finish_row(ctx, PRICES, metrics or GatewayMetrics(), ctx.received_t + 0.1)


def money(row: dict[str, Any]) -> tuple[Decimal | None, Decimal | None, Decimal]:
    cost, baseline = (None if row[k] is None else Decimal(row[k]) for k in ("cost_usd", "baseline_cost_usd"))
    return cost, baseline, Decimal(row["savings_usd"])


def test_a_plain_call_costs_its_list_price_and_saves_nothing() -> None:
    row = row_of(call())
    assert money(row) == (LIST_PRICE, LIST_PRICE, 0)
    assert (row["savings_kind"], row["policy_id"], row["policy_version"], row["reused_request_id"]) == ("", "", 0, "")


@pytest.mark.parametrize(("kind", "outcome"), [("cache", "hit"), ("coalesce", "coalesced")])
def test_a_reused_answer_costs_nothing_and_saves_its_list_price(kind: str, outcome: str) -> None:
    row = row_of(reused(kind, outcome))
    assert money(row) == (0, LIST_PRICE, LIST_PRICE)
    assert (row["savings_kind"], row["cache_outcome"]) == (kind, outcome)
    assert row["status"] == {"cache": "cache_hit", "coalesce": "coalesced"}[kind] and row["http_status"] == 200
    assert (row["policy_id"], row["policy_version"], row["reused_request_id"]) == ("pol-1", 3, "req-1")
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_prompt_tokens"]) == (1000, 500, 200)
    assert all(isinstance(row[k], str) for k in ("cost_usd", "baseline_cost_usd", "savings_usd"))


def test_a_miss_that_filled_the_cache_carries_the_policy_and_pays_full_price() -> None:
    row = row_of(call(cache_outcome="miss", policy_id="pol-1", policy_version=3))
    assert money(row) == (LIST_PRICE, LIST_PRICE, 0)
    assert (row["savings_kind"], row["policy_id"], row["policy_version"], row["status"]) == ("", "pol-1", 3, "ok")


def test_no_saving_is_claimed_for_a_call_that_went_upstream() -> None:
    # A follower released by a failed leader makes its own call: it was paid for, whatever the context says.
    row = row_of(reused("coalesce", "coalesced", upstream_called=True))
    assert money(row) == (LIST_PRICE, LIST_PRICE, 0)
    assert (row["savings_kind"], row["reused_request_id"]) == ("", "")


def test_a_hit_on_an_azure_deployment_is_priced_by_the_requested_model() -> None:
    row = row_of(reused("cache", "hit", served_model="acme-prod-mini-deployment", provider="azure"))
    assert money(row) == (0, LIST_PRICE, LIST_PRICE)


def test_a_hit_on_an_unpriced_model_costs_nothing_and_claims_no_saving() -> None:
    metrics = GatewayMetrics()
    row = row_of(reused("cache", "hit", requested_model="house-model", served_model="house-model"), metrics)
    assert money(row) == (0, None, 0)
    assert row["savings_kind"] == "cache"
    assert metrics.registry.get_sample_value("netra_unpriced_calls_total", {"model": "house-model"}) == 1


def test_a_reused_answer_the_client_left_paid_nothing_and_claims_nothing() -> None:
    # A coalesced follower whose client went away: the answer never reached anyone on its behalf.
    ctx = reused("coalesce", "coalesced")
    ctx.client_left()
    row = row_of(ctx)
    assert (row["status"], row["http_status"]) == ("client_cancelled", 499)
    assert money(row) == (0, 0, 0)
    assert (row["savings_kind"], row["reused_request_id"], row["policy_id"]) == ("", "req-1", "pol-1")


def test_a_shared_stream_that_failed_claims_nothing() -> None:
    # The leader's stream broke after it started: the follower got the in-band error, not an answer.
    row = row_of(reused("coalesce", "coalesced", stream=True, error_code="upstream_error"))
    assert (row["status"], row["savings_kind"]) == ("upstream_error", "")
    assert money(row) == (0, 0, 0)
