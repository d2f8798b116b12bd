"""/v1/files: upload, list, retrieve, content and delete, each scoped to the caller's tenant."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from core.batch_files import FILE, mark_deleted, record
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
from gateway.batch_api.jsonl import LineProblem, ModelResolver, check_batch_file
from gateway.batch_api.outputs import ledger_output
from gateway.batch_api.upload import provider_form, read_form, upload_of
from gateway.batch_api.upstream import BatchUpstream, chosen, holding

# OpenAI lists up to 10 000 files a page, and all of them when no limit is given.
MAX_FILES_PAGE = 10_000


def resolver(who: Caller, upstream: BatchUpstream) -> ModelResolver:
    """How a batch line's model is checked: one the key may use, served by this provider on this endpoint."""
    models = who.state.config.models

    def resolve(name: str, endpoint: str) -> str:
        if not who.principal.may_use(name) or not any(m.name == name for m in models):
            raise LineProblem(f"the model `{name}` does not exist or you do not have access to it.")
        model = next((m for m in models if m.name == name and m.provider == upstream.name), None)
        if model is None:
            raise LineProblem(f"the model `{name}` is not served by provider `{upstream.name}`, which runs this batch.")
        if not upstream.supports(endpoint):
            raise LineProblem(f"provider `{upstream.name}` does not serve /v1/{endpoint}.")
        return model.upstream_name

    return resolve


async def create_file(request: Request) -> Response:
    """POST /v1/files: a batch input file is checked line by line and sent with the served model names."""
    who = await caller(request)
    upstream = chosen(who.state, request.headers)
    limit = who.state.settings.max_file_bytes
    upload = await upload_of(await read_form(request, limit), limit)
    lines = None
    if upload.purpose == "batch":
        checked = await asyncio.to_thread(
            check_batch_file, upload.data, resolver(who, upstream), upstream.endpoint_path
        )
        upload.data, lines = checked.content, checked.lines
    reply = await upstream.send("POST", "files", form=provider_form(upload))
    async with who.state.sessions() as session:
        await record(session, who.owner(upstream.name), FILE, reply.object(), upload.purpose, lines=lines)
        await session.commit()
    return json_response(reply.body)


async def list_files(request: Request) -> Response:
    """GET /v1/files: the tenant's own files, newest first unless asked otherwise, optionally of one purpose."""
    who = await caller(request)
    return await list_page(who, page_query(request, who, FILE, MAX_FILES_PAGE))


async def retrieve_file(request: Request) -> Response:
    """GET /v1/files/{id}: the provider's current object, which is stored as last seen."""
    who = await caller(request)
    row = await own(who, FILE, path_id(request, "file_id"))
    reply = await holding(who.state, row.provider).send("GET", f"files/{quoted(row.object_id)}")
    async with who.state.sessions() as session:
        await record(session, who.owner(row.provider), FILE, reply.object(), row.purpose)
        await session.commit()
    return json_response(reply.body)


async def delete_file(request: Request) -> Response:
    """DELETE /v1/files/{id}: deleted at the provider, then gone from the tenant's lists."""
    who = await caller(request)
    row = await own(who, FILE, path_id(request, "file_id"))
    reply = await holding(who.state, row.provider).send("DELETE", f"files/{quoted(row.object_id)}")
    async with who.state.sessions() as session:
        await mark_deleted(session, row.seq)
        await session.commit()
    return json_response(reply.body)


async def file_content(request: Request) -> Response:
    """GET /v1/files/{id}/content: the bytes; a batch's output is written to the ledger the first time."""
    who = await caller(request)
    row = await own(who, FILE, path_id(request, "file_id"))
    upstream = holding(who.state, row.provider)
    reply = await upstream.send("GET", f"files/{quoted(row.object_id)}/content")
    if row.batch_id is not None and not row.ledgered:
        await ledger_output(who, row, reply.body)
    return Response(reply.body, media_type=reply.content_type)
