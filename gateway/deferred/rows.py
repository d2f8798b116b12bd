"""The ledger row of a deferred request, written when its result arrives: batch prices, sync-price baseline.

Every value comes from the stored request, so a row written twice (a process that died between writing it and
noting so) is the same row, which `llm_calls` (ReplacingMergeTree on tenant, received_at, request_id) keeps once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.callrow import LedgerRow
from core.deferred_models import COMPLETED, DeferredRequest
from core.prices import PriceTable, batch_money
from core.usage import Usage
from gateway.deferred.outcome import ledger_status


def micros(moment: datetime) -> int:
    """A timestamp as epoch microseconds."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _usage(request: DeferredRequest) -> Usage:
    return Usage(
        prompt_tokens=request.prompt_tokens, completion_tokens=request.completion_tokens,
        cached_tokens=request.cached_tokens, cache_write_tokens=request.cache_write_tokens,
        reported=request.usage_reported,
    )


def money(request: DeferredRequest, usage: Usage, prices: PriceTable) -> tuple[str | None, str | None, str]:
    """(cost at batch prices, baseline at synchronous prices, savings); NULLs when the model has no price."""
    if usage.total_tokens == 0:
        return "0", "0", "0"
    return batch_money(usage, prices.call_price(request.upstream_model, request.requested_model))


def deferred_row(request: DeferredRequest, prices: PriceTable) -> dict[str, Any]:
    """The ledger row of a finished deferred request, as the ledger writer takes it."""
    return ledger_row(request, prices).as_dict()


def ledger_row(request: DeferredRequest, prices: PriceTable) -> LedgerRow:
    """The typed ledger row of a finished deferred request."""
    ok = request.status == COMPLETED
    usage = _usage(request)
    cost, baseline, savings = money(request, usage, prices)
    assert request.completed_at is not None  # only finished requests are recorded
    finished = max(micros(request.completed_at), request.received_us)
    return LedgerRow(
        request_id=request.request_id, received_at=request.received_us, first_byte_at=None, finished_at=finished,
        tenant_id=request.tenant_id, tenant_name=request.tenant_name, key_id=request.key_id,
        endpoint=request.endpoint, requested_model=request.requested_model, served_model=request.upstream_model,
        provider=request.provider, status=ledger_status(request.status, request.error_status),
        http_status=200 if ok else request.error_status, error_code="" if ok else request.error_code,
        stream=False, cache_outcome="bypass", policy_id=request.policy_id, policy_version=request.policy_version,
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=usage.cached_tokens, cache_write_tokens=usage.cache_write_tokens,
        tokens_estimated=not usage.reported, cost_usd=cost, baseline_cost_usd=baseline, savings_usd=savings,
        savings_kind="batch" if ok else "", reused_request_id="",
        price_version=prices.version, latency_ms=(finished - request.received_us) / 1000.0, ttft_ms=None,
        upstream_attempts=1, request_hash=request.request_hash, prompt_chars=request.prompt_chars,
        tags=list(request.tags),
    )
