"""A finished request as a ledger row: its outcome, tokens and what it cost."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from core.callrow import LedgerRow
from core.errors import (
    AuthenticationFailed,
    NetraError,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    TenantSuspended,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
)
from core.metrics import GatewayMetrics
from core.prices import PriceTable, compute_cost
from core.usage import Usage, estimate_tokens
from gateway.context import CallContext

log = logging.getLogger("netra.ledger")
_OUTCOMES: tuple[tuple[type[NetraError], str], ...] = (
    (UpstreamRejected, "upstream_rejected"), (UpstreamFailed, "upstream_error"), (UpstreamTimeout, "upstream_error"),
    (RateLimited, "rate_limited"), (QuotaExceeded, "rate_limited"), (AuthenticationFailed, "auth_error"),
    (TenantSuspended, "auth_error"),
)
# Savings that come from reusing another call's answer: nothing is paid upstream for the call that reuses it.
REUSE_KINDS = frozenset({"cache", "coalesce"})
# The status of a call answered in full with a reused answer (docs/ledger.md, Statuses).
_REUSED_STATUS: Mapping[str, str] = MappingProxyType({"cache": "cache_hit", "coalesce": "coalesced"})
_UNAVAILABLE = {"logging_unavailable": "logging_unavailable", "upstream_unavailable": "upstream_error",
                "upstream_overloaded": "upstream_error"}


def outcome_of(error: NetraError) -> str:
    """The ledger status of a request that ended with this error."""
    if isinstance(error, ServiceUnavailable):
        return _UNAVAILABLE.get(error.code, "unavailable")
    for cls, outcome in _OUTCOMES:
        if isinstance(error, cls):
            return outcome
    return "invalid_request" if error.status_code < 500 else "gateway_error"


def record_error(ctx: CallContext, error: NetraError) -> None:
    """Note on the context how the request failed."""
    ctx.error_code = error.code
    ctx.outcome = outcome_of(error)


def start_row(ctx: CallContext) -> dict[str, Any]:
    """What is known of a call when it is about to go upstream (the spill's start record)."""
    return {
        "request_id": ctx.request_id, "received_at": ctx.received_us, "tenant_id": ctx.tenant_id,
        "tenant_name": ctx.tenant_name, "key_id": ctx.key_id, "endpoint": ctx.endpoint,
        "requested_model": ctx.requested_model, "served_model": ctx.served_model, "provider": ctx.provider,
        "stream": ctx.stream, "cache_outcome": ctx.cache_outcome, "request_hash": ctx.request_hash,
        "prompt_chars": ctx.prompt_chars, "tags": ctx.tags, "upstream_attempts": ctx.upstream_attempts,
        "prompt_tokens": estimate_tokens(ctx.prompt_chars),
    }


def final_status(ctx: CallContext) -> tuple[str, int]:
    """The call's ledger status and HTTP status (499 when the client went away)."""
    if ctx.cancelled:
        return "client_cancelled", 499
    if ctx.outcome:
        return ctx.outcome, ctx.status
    if ctx.error_code:
        # The stream started and then failed: the error went to the client in-band.
        return "upstream_error", ctx.status
    if not 200 <= ctx.status < 400:
        return "gateway_error", ctx.status
    return _REUSED_STATUS.get(saving_kind(ctx), "ok"), ctx.status


def billed_usage(ctx: CallContext) -> Usage | None:
    """Tokens to bill: as reported, else estimated when the provider produced output, else none."""
    if ctx.usage is not None:
        return ctx.usage
    if not ctx.upstream_called or (ctx.outcome and not ctx.completion_chars and not ctx.cancelled):
        return None
    return Usage(
        prompt_tokens=estimate_tokens(ctx.prompt_chars), completion_tokens=estimate_tokens(ctx.completion_chars),
        reported=False,
    )


def _list_price(
    usage: Usage, prices: PriceTable, metrics: GatewayMetrics, upstream: str, name: str
) -> str | None:
    """What these tokens cost at the list price of a model (None: unpriced)."""
    if usage.total_tokens == 0:
        return "0"
    cost = compute_cost(usage, prices.call_price(upstream, name))
    if cost.usd is None:
        metrics.unpriced.labels(upstream).inc()
        log.warning("no price for model; cost logged as unknown", extra={"model": upstream})
        return None
    return str(cost.usd)


def list_prices(
    ctx: CallContext, usage: Usage, prices: PriceTable, metrics: GatewayMetrics
) -> tuple[str | None, str | None]:
    """(paid, baseline): the tokens at the served model's list price and at the requested model's."""
    paid = _list_price(usage, prices, metrics, ctx.served_model, ctx.served_name or ctx.requested_model)
    if not routed(ctx):
        return paid, paid
    requested = _list_price(usage, prices, metrics, ctx.requested_upstream, ctx.requested_name)
    return paid, requested


def routed(ctx: CallContext) -> bool:
    """Whether a route policy or a fallback had another model answer than the one asked for."""
    return bool(ctx.served_name) and bool(ctx.requested_name) and ctx.served_name != ctx.requested_name


def reused_answer(ctx: CallContext) -> bool:
    """Whether the call was answered with another request's answer (cache or coalescing) and nothing went upstream."""
    return ctx.savings_kind in REUSE_KINDS and not ctx.upstream_called


def delivered(ctx: CallContext) -> bool:
    """Whether the answer reached its client in full."""
    return not (ctx.cancelled or ctx.outcome or ctx.error_code) and 200 <= ctx.status < 400


def saving_kind(ctx: CallContext) -> str:
    """The kind of saving a reused answer made ("" for none): one that reached its client in full."""
    return ctx.savings_kind if delivered(ctx) and reused_answer(ctx) else ""


def _money(prices: tuple[str | None, str | None], reused: bool, kind: str) -> tuple[str | None, str | None, str]:
    """(cost paid upstream, baseline, savings) of a call whose tokens cost `prices` (paid, baseline; None: unpriced)."""
    paid, list_price = prices
    if not reused:
        # What was paid against what the model asked for costs: equal unless the call was routed elsewhere (then
        # the difference, negative when a fallback cost more); unknown prices claim no saving.
        saved = Decimal(list_price) - Decimal(paid) if paid is not None and list_price is not None else Decimal(0)
        return paid, list_price, str(saved)
    if not kind:
        # The reused answer did not reach the client in full (it left, or the shared stream failed): nothing was
        # paid and no saving is claimed.
        return "0", "0", "0"
    # Nothing was paid; an unpriced model's saving is unknown and counted as none.
    return "0", list_price, list_price if list_price is not None else "0"


def finish_row(ctx: CallContext, prices: PriceTable, metrics: GatewayMetrics, now_t: float) -> dict[str, Any]:
    """The ledger row of a finished call, as the ledger writer takes it."""
    return ledger_row(ctx, prices, metrics, now_t).as_dict()


def acting_policy(ctx: CallContext, reused: bool) -> tuple[str, int]:
    """The policy the row names: the route policy when the call went upstream on its plan, else the cache's."""
    if ctx.route_policy is not None and not reused:
        return ctx.route_policy  # the route decided where the call went and what it cost
    return ctx.policy_id, ctx.policy_version


def ledger_row(ctx: CallContext, prices: PriceTable, metrics: GatewayMetrics, now_t: float) -> LedgerRow:
    """The typed ledger row of a finished call."""
    status, http_status = final_status(ctx)
    usage = billed_usage(ctx) or Usage()  # no tokens to bill reads as zeros
    reused = reused_answer(ctx)
    kind = saving_kind(ctx) or ("route" if routed(ctx) and not reused and delivered(ctx) else "")
    cost, baseline, savings = _money(list_prices(ctx, usage, prices, metrics), reused, kind)
    policy_id, policy_version = acting_policy(ctx, reused)
    first_byte = ctx.first_byte_t
    return LedgerRow(
        request_id=ctx.request_id, received_at=ctx.received_us,
        first_byte_at=ctx.to_time_us(first_byte) if first_byte is not None else None,
        finished_at=ctx.to_time_us(now_t), tenant_id=ctx.tenant_id, tenant_name=ctx.tenant_name, key_id=ctx.key_id,
        endpoint=ctx.endpoint, requested_model=ctx.requested_model, served_model=ctx.served_model,
        provider=ctx.provider, status=status, http_status=http_status, error_code=ctx.error_code, stream=ctx.stream,
        cache_outcome=ctx.cache_outcome, policy_id=policy_id, policy_version=policy_version,
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=usage.cached_tokens, cache_write_tokens=usage.cache_write_tokens,
        tokens_estimated=not usage.reported, cost_usd=cost, baseline_cost_usd=baseline,
        savings_usd=savings, savings_kind=kind, reused_request_id=ctx.reused_request_id if reused else "",
        price_version=prices.version, latency_ms=round(ctx.elapsed_ms(now_t), 3),
        ttft_ms=round(ctx.elapsed_ms(first_byte), 3) if ctx.stream and first_byte is not None else None,
        upstream_attempts=ctx.upstream_attempts, request_hash=ctx.request_hash, prompt_chars=ctx.prompt_chars,
        tags=ctx.tags,
    )
