"""A finished request as a ledger row: its outcome, tokens and what it cost."""

from __future__ import annotations

import logging
from typing import Any

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
    return ("ok" if 200 <= ctx.status < 400 else "gateway_error"), ctx.status


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


def _money(ctx: CallContext, usage: Usage | None, prices: PriceTable, metrics: GatewayMetrics) -> str | None:
    if usage is None or usage.total_tokens == 0:
        return "0"
    # Azure deployments carry names of their own: fall back to the public model name for the price.
    price = prices.price_for(ctx.served_model) or prices.price_for(ctx.requested_model)
    cost = compute_cost(usage, price)
    if cost.usd is None:
        metrics.unpriced.labels(ctx.served_model).inc()
        log.warning("no price for model; cost logged as unknown", extra={"model": ctx.served_model})
        return None
    return str(cost.usd)


def finish_row(ctx: CallContext, prices: PriceTable, metrics: GatewayMetrics, now_t: float) -> dict[str, Any]:
    """The ledger row of a finished call."""
    row = start_row(ctx)
    status, http_status = final_status(ctx)
    usage = billed_usage(ctx)
    cost = _money(ctx, usage, prices, metrics)
    row.update(
        finished_at=ctx.to_time_us(now_t), status=status, http_status=http_status, error_code=ctx.error_code,
        first_byte_at=ctx.to_time_us(ctx.first_byte_t) if ctx.first_byte_t is not None else None,
        prompt_tokens=usage.prompt_tokens if usage else 0, completion_tokens=usage.completion_tokens if usage else 0,
        cached_prompt_tokens=usage.cached_tokens if usage else 0,
        cache_write_tokens=usage.cache_write_tokens if usage else 0,
        tokens_estimated=usage is not None and not usage.reported,
        # Until policies exist the call is exactly what the client sent: baseline equals cost, nothing saved.
        cost_usd=cost, baseline_cost_usd=cost, savings_usd="0", savings_kind="", price_version=prices.version,
        latency_ms=round(ctx.elapsed_ms(now_t), 3),
        ttft_ms=round(ctx.elapsed_ms(ctx.first_byte_t), 3) if ctx.stream and ctx.first_byte_t is not None else None,
    )
    return row
