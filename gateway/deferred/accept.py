"""The deferred lane's front door: a request with `x-netra-defer` that a defer policy matches is stored, answered 202.

Without a matching batch policy with `defer: true` (or on an endpoint batch APIs do not take) the header is
ignored and the call is served at once. The 202 exchange writes no ledger row: the row comes with the result,
under the same request id.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers

from core.deferred_models import QUEUED, DeferredRequest
from core.errors import InvalidParameter, ServiceUnavailable
from core.models import utcnow
from gateway.context import CallContext
from gateway.deferred.clients import BATCH_KINDS
from gateway.deferred.store import insert_request
from gateway.providers.base import UpstreamCall
from gateway.responses import BytesResponse
from gateway.state import GatewayState
from policies.models import BatchPolicy, parse_duration

DEFER_HEADER = "x-netra-defer"
# Provider batch APIs promise results within 24 hours: a client must accept at least that.
MIN_DEFER_SECONDS = 24 * 3600
DEFERRABLE = frozenset({"chat/completions", "embeddings"})
OBJECT = "netra.deferred"


def check_deferrable(value: str, call: UpstreamCall) -> None:
    """A 400 unless the header asks for at least 24 hours and the request does not stream."""
    try:
        seconds = int(value) if value.strip().isdigit() else parse_duration(value)
    except ValueError:
        seconds = 0
    if seconds < MIN_DEFER_SECONDS:
        raise InvalidParameter(
            f"`{DEFER_HEADER}` must be a duration of at least 24h, such as 24h or 2d.", code="invalid_value",
            param=DEFER_HEADER,
        )
    if call.stream:
        raise InvalidParameter(
            "A deferred request cannot stream: leave out `stream` or the x-netra-defer header.", code="invalid_value",
            param="stream",
        )


def new_request(ctx: CallContext, call: UpstreamCall, policy: BatchPolicy) -> DeferredRequest:
    """The stored form of an accepted request: what to send, and everything its ledger row will need."""
    return DeferredRequest(
        id=f"def_{secrets.token_hex(12)}", request_id=ctx.request_id, tenant_id=ctx.tenant_id,
        tenant_name=ctx.tenant_name, key_id=ctx.key_id, endpoint=call.endpoint, requested_model=call.model.name,
        provider=call.model.provider, upstream_model=call.model.upstream_name, body=orjson.dumps(call.body).decode(),
        policy_id=policy.id or "", policy_version=policy.version, tags=list(ctx.tags), request_hash=ctx.request_hash,
        prompt_chars=ctx.prompt_chars, status=QUEUED, received_us=ctx.received_us, created_at=utcnow(),
    )


def accepted(request: DeferredRequest) -> dict[str, Any]:
    """The 202 body."""
    return {"id": request.id, "object": OBJECT, "status": QUEUED, "created_at": int(request.created_at.timestamp())}


async def store(state: GatewayState, request: DeferredRequest) -> None:
    """Queue the request; a database that cannot take it is a 503 (the call is not silently served instead)."""
    try:
        await insert_request(state.sessions, request)
    except (SQLAlchemyError, OSError) as exc:
        raise ServiceUnavailable(
            "The deferred queue cannot be written right now; retry later.", code="deferred_unavailable",
            headers={"retry-after": "5"},
        ) from exc


async def defer(
    state: GatewayState, ctx: CallContext, call: UpstreamCall, policy: BatchPolicy | None, headers: Headers
) -> BytesResponse | None:
    """202 with the deferred id when the request goes to the deferred lane; None to serve it at once.

    `policy` is the batch policy the request's decision found (deferred only when it says `defer: true`).
    """
    value = headers.get(DEFER_HEADER)
    if value is None or policy is None or not policy.defer or call.endpoint not in DEFERRABLE:
        return None
    provider = state.providers[call.model.provider]
    if provider.config.kind not in BATCH_KINDS:
        return None
    check_deferrable(value, call)
    provider.encode(call)  # a body the provider cannot take is refused now, not a day later
    request = new_request(ctx, call, policy)
    await store(state, request)
    ctx.deferred = True
    ctx.policy_id, ctx.policy_version = request.policy_id, request.policy_version
    location = f"/v1/deferred/{request.id}".encode()
    return BytesResponse(orjson.dumps(accepted(request)), [(b"location", location)], 202)
