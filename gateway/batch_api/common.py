"""What the Files and Batches handlers share: the caller, the not-found error, list pages and JSON answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from core.batch_files import BATCH, FILE, BatchObject, Owner, PageQuery, owned, page
from core.errors import InvalidParameter, NetraError
from gateway.auth import Principal
from gateway.batch_api.upstream import named
from gateway.handlers import authorize
from gateway.state import GatewayState, get_ctx, get_state

# How OpenAI names each kind of object in its 404 message.
_OBJECT_NAMES = {FILE: "File", BATCH: "Batch"}


class NoSuchObject(NetraError):
    """An id the tenant does not own (another tenant's, deleted, or unknown), as OpenAI says it."""

    status = 404
    type = "invalid_request_error"
    default_code = "not_found"

    def __init__(self, what: str, object_id: str, param: str = "id") -> None:
        super().__init__(f"No such {what} object: {object_id}", param=param)

    def envelope(self) -> dict[str, Any]:
        """OpenAI's envelope for a missing object has no code."""
        env = super().envelope()
        env["error"]["code"] = None
        return env


@dataclass(frozen=True, slots=True)
class Caller:
    """An authorised request: the state and the principal behind it."""

    state: GatewayState
    principal: Principal

    def owner(self, provider: str) -> Owner:
        """The owner of an object this caller creates at `provider`."""
        return Owner(self.principal.tenant_id, self.principal.key_id, provider)


async def caller(request: Request) -> Caller:
    """Authenticate and count the request against the tenant's limit, as the proxy endpoints do."""
    state = get_state(request)
    return Caller(state, await authorize(state, request, get_ctx(request)))


async def own(who: Caller, kind: str, object_id: str, param: str = "id") -> BatchObject:
    """The caller's object of this kind with this id, or OpenAI's 404 (naming `param`)."""
    async with who.state.sessions() as session:
        row = await owned(session, who.principal.tenant_id, kind, object_id)
    if row is None:
        raise NoSuchObject(_OBJECT_NAMES[kind], object_id, param=param)
    return row


def json_response(body: bytes | dict[str, Any], status: int = 200) -> Response:
    """A JSON answer (bytes pass as they came from the provider)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(data, status_code=status, media_type="application/json")


def path_id(request: Request, name: str) -> str:
    """An id from the path."""
    return str(request.path_params[name])


def quoted(object_id: str) -> str:
    """An id as one path segment of a provider URL."""
    return quote(object_id, safe="")


def _limit(params: Mapping[str, str], default: int, most: int) -> int:
    raw = params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise InvalidParameter(f"limit must be an integer from 1 to {most}.", code="invalid_value", param="limit")
    return int(raw)


def page_query(request: Request, caller: Caller, kind: str, most: int, default: int | None = None) -> PageQuery:
    """The page a list request asks for (limit, after, order, purpose; the provider its header names), of the
    caller's own objects of this kind."""
    params = request.query_params
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidParameter("order must be asc or desc.", code="invalid_value", param="order")
    limit = _limit(params, most if default is None else default, most)
    return PageQuery(
        tenant_id=caller.principal.tenant_id, kind=kind, limit=limit, after=params.get("after") or None,
        newest_first=order == "desc", purpose=params.get("purpose") or None,
        provider=named(caller.state, request.headers),
    )


async def list_page(caller: Caller, query: PageQuery) -> Response:
    """One page of the caller's objects in OpenAI's list shape."""
    async with caller.state.sessions() as session:
        rows, more = await page(session, query)
    data = [row.body for row in rows]
    return json_response({
        "object": "list", "data": data, "first_id": rows[0].object_id if rows else None,
        "last_id": rows[-1].object_id if rows else None, "has_more": more,
    })
