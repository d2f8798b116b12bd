"""/v1/batches: create, retrieve, list and cancel, each scoped to the caller's tenant."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from core.batch_files import BATCH, FILE, BatchObject, owned, record
from core.errors import InvalidParameter, NetraError
from gateway.batch_api.common import (
    Caller,
    caller,
    json_response,
    list_page,
    own,
    page_query,
    path_id,
    quoted,
)
from gateway.batch_api.jsonl import BATCH_URLS
from gateway.batch_api.upstream import BatchUpstream, holding
from gateway.body import parse_object, read_body

# OpenAI's batch list pages: 20 by default, at most 100.
DEFAULT_PAGE, MAX_PAGE = 20, 100
OUTPUT_PURPOSE = "batch_output"


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidParameter(
            f"Missing required parameter: '{name}'.", code="missing_required_parameter", param=name
        )
    return value


async def _input_file(who: Caller, body: dict[str, Any]) -> BatchObject:
    """The batch's input file, which must be the caller's and fit the batch's endpoint."""
    file_id, endpoint = _required(body, "input_file_id"), _required(body, "endpoint")
    if endpoint not in BATCH_URLS:
        raise InvalidParameter(
            f"endpoint must be one of {', '.join(sorted(BATCH_URLS))}.", code="invalid_value", param="endpoint"
        )
    source = await own(who, FILE, file_id, param="input_file_id")
    other = {line[0] for line in (source.lines or {}).values()} - {endpoint.removeprefix("/v1/")}
    if other:
        raise InvalidParameter(
            f"The input file has lines for /v1/{sorted(other)[0]}; every line must call the batch's endpoint "
            f"{endpoint}.", code="invalid_value", param="endpoint",
        )
    return source


async def create_batch(request: Request) -> Response:
    """POST /v1/batches: at the provider holding the input file, which must be the caller's."""
    who = await caller(request)
    body = parse_object(await read_body(request, who.state.settings.max_body_bytes))
    source = await _input_file(who, body)
    upstream = holding(who.state, source.provider)
    endpoint = body["endpoint"]
    reply = await upstream.send("POST", "batches", json={**body, "endpoint": upstream.endpoint_path(endpoint)})
    async with who.state.sessions() as session:
        await record(session, who.owner(upstream.name), BATCH, reply.object(), endpoint)
        await session.commit()
    return json_response(reply.body)


async def _file_object(upstream: BatchUpstream, file_id: str) -> dict[str, Any]:
    """A result file's object at the provider, or the least a list needs when it cannot be read now."""
    try:
        return (await upstream.send("GET", f"files/{quoted(file_id)}")).object()
    except NetraError:
        return {"id": file_id, "object": "file", "purpose": OUTPUT_PURPOSE}


async def _refresh(who: Caller, row: BatchObject, upstream: BatchUpstream, batch: dict[str, Any]) -> None:
    """Store the batch as seen now, and its output and error files as the caller's."""
    owner = who.owner(row.provider)
    results = [batch.get(name) for name in ("output_file_id", "error_file_id")]
    async with who.state.sessions() as session:
        new = [
            file_id for file_id in results if isinstance(file_id, str) and file_id
            and await owned(session, owner.tenant_id, FILE, file_id, deleted_too=True) is None
        ]
    # Read outside any database session: no connection is held while the provider answers.
    found = [await _file_object(upstream, file_id) for file_id in new]
    async with who.state.sessions() as session:
        await record(session, owner, BATCH, batch, row.purpose)
        for file in found:
            await record(session, owner, FILE, file, OUTPUT_PURPOSE, batch_id=row.object_id)
        await session.commit()


async def _at_provider(request: Request, method: str, action: str = "") -> Response:
    """Send the caller's batch (or an action on it) to its provider and store what comes back."""
    who = await caller(request)
    row = await own(who, BATCH, path_id(request, "batch_id"))
    upstream = holding(who.state, row.provider)
    reply = await upstream.send(method, f"batches/{quoted(row.object_id)}{action}")
    await _refresh(who, row, upstream, reply.object())
    return json_response(reply.body)


async def retrieve_batch(request: Request) -> Response:
    """GET /v1/batches/{id}: the provider's current object; its result files become the caller's."""
    return await _at_provider(request, "GET")


async def cancel_batch(request: Request) -> Response:
    """POST /v1/batches/{id}/cancel."""
    return await _at_provider(request, "POST", "/cancel")


async def list_batches(request: Request) -> Response:
    """GET /v1/batches: the tenant's own batches, newest first, as last seen."""
    who = await caller(request)
    return await list_page(who, page_query(request, who, BATCH, MAX_PAGE, DEFAULT_PAGE))
