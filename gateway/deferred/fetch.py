"""GET /v1/deferred/{id}: where a deferred request is, and its result or error once its batch has ended."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from core.deferred_models import COMPLETED, QUEUED, SUBMITTING, TERMINAL, DeferredRequest
from core.errors import NotFound, ServiceUnavailable
from core.models import utcnow
from gateway.deferred.accept import OBJECT
from gateway.deferred.store import load_for_tenant, mark_fetched
from gateway.state import GatewayState, get_ctx, get_state

# Ids are `def_` and 24 hex digits; anything much longer is not one (and is not echoed whole).
MAX_ID_CHARS = 64


def view(request: DeferredRequest) -> dict[str, Any]:
    """The public form: id, object, status, created_at; completed_at and the response or error once finished."""
    # A request being submitted is still queued as far as the client can tell.
    status = QUEUED if request.status == SUBMITTING else request.status
    body: dict[str, Any] = {
        "id": request.id, "object": OBJECT, "status": status, "created_at": int(request.created_at.timestamp()),
    }
    if request.status in TERMINAL and request.completed_at is not None:
        body["completed_at"] = int(request.completed_at.timestamp())
    if request.status == COMPLETED and request.result is not None:
        body["response"] = orjson.Fragment(request.result)
    elif request.status in TERMINAL and request.error is not None:
        body["error"] = orjson.loads(request.error)["error"]
    return body


async def _find(state: GatewayState, deferred_id: str, tenant_id: str) -> DeferredRequest | None:
    if len(deferred_id) > MAX_ID_CHARS:
        return None
    try:
        request = await load_for_tenant(state.sessions, deferred_id, tenant_id)
        if request is not None and request.status in TERMINAL and request.fetched_at is None:
            await mark_fetched(state.sessions, deferred_id, utcnow())
    except (SQLAlchemyError, OSError) as exc:
        raise ServiceUnavailable(
            "Deferred requests cannot be read right now; retry later.", code="deferred_unavailable",
            headers={"retry-after": "5"},
        ) from exc
    return request


async def get_deferred(request: Request) -> Response:
    """GET /v1/deferred/{id}, for the key's own tenant only (another tenant's id is unknown: 404)."""
    state, ctx = get_state(request), get_ctx(request)
    principal = await state.auth.authenticate(request.headers.get("authorization"))
    ctx.tenant_id, ctx.tenant_name, ctx.key_id = principal.tenant_id, principal.tenant_name, principal.key_id
    deferred_id: str = request.path_params["deferred_id"]
    found = await _find(state, deferred_id, principal.tenant_id)
    if found is None:
        raise NotFound(f"No deferred request with id {deferred_id[:MAX_ID_CHARS]}.", param="id")
    return Response(orjson.dumps(view(found)), media_type="application/json")
