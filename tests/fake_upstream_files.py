"""The OpenAI Files API as the fake upstream serves it: upload, list, retrieve, content, delete.

Files live in memory (``fake.files``, by id) until the fake is dropped; ``fake.reset()`` keeps them. Served at
``/v1/files`` with OpenAI's bearer key and at ``/openai/files`` with Azure's ``api-key`` and ``api-version``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiohttp import web
from python_multipart.multipart import Field, File, create_form_parser

from tests.fake_upstream_behaviour import next_id
from tests.fake_upstream_dialects import AnthropicDialect, OpenAIDialect
from tests.fake_upstream_http import UpstreamState, json_response

PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
MAX_FILE_BYTES = 64 * 1024 * 1024
FILES_PAGE = 10_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
D = TypeVar("D", OpenAIDialect, AnthropicDialect)


def guarded(
    state: UpstreamState, route: Callable[[web.Request, D], Awaitable[web.StreamResponse]], dialect: D
) -> Handler:
    """A handler that records the request, checks the dialect's credential and applies a failure switched on for the
    exact path (``fake.fail("/v1/batches", 503)``) before the route answers."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await state.receive(request)
        state.failures.count(request.path)
        if not dialect.authorised(request):
            return dialect.unauthorised()
        switched = state.failures.take(request.path)
        if switched is not None:
            return await state.failures.inflict(request, switched, dialect, "")
        return await route(request, dialect)

    return handler


class Identified(Protocol):
    """Anything listed by id."""

    @property
    def id(self) -> str:
        """The object's id."""
        ...


Item = TypeVar("Item", bound=Identified)


def page(items: Sequence[Item], limit: int, after: str | None) -> tuple[list[Item], bool]:
    """The items after the one with id ``after`` (from the start when None or unknown), at most ``limit`` of them,
    and whether more follow."""
    ids = [item.id for item in items]
    start = ids.index(after) + 1 if after in ids else 0
    chosen = list(items[start : start + limit])
    return chosen, start + limit < len(items)


def list_body(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's cursor list envelope."""
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}


def limit_of(request: web.Request, default: int, most: int) -> int:
    """The ``limit`` query parameter, clamped; the default when absent or not a number."""
    raw = request.query.get("limit", "")
    return min(max(int(raw), 1), most) if raw.isdigit() else default


@dataclass(slots=True)
class StoredFile:
    """One uploaded (or batch-produced) file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))

    def to_dict(self) -> dict[str, Any]:
        """The File object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "expires_at": None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


class FileStore:
    """The fake's files by id, in upload order."""

    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}

    def add(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        """Keep a new file and return it."""
        stored = StoredFile(next_id("file-fake"), filename, purpose, content)
        self.files[stored.id] = stored
        return stored

    def listed(self, purpose: str | None, order: str) -> list[StoredFile]:
        """Files of a purpose (every purpose when None), newest first unless ``order`` is ``asc``."""
        chosen = [stored for stored in self.files.values() if purpose is None or stored.purpose == purpose]
        return chosen if order == "asc" else chosen[::-1]


def parse_upload(content_type: str, raw: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """The text fields and the files (name and bytes) of a multipart/form-data body."""
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}

    def on_field(part: Field) -> None:
        fields[(part.field_name or b"").decode()] = (part.value or b"").decode("utf-8", "replace")

    def on_file(part: File) -> None:
        part.file_object.seek(0)
        name = (part.file_name or b"upload").decode("utf-8", "replace")
        files[(part.field_name or b"").decode()] = (name, part.file_object.read())

    config: Any = {"MAX_MEMORY_FILE_SIZE": MAX_FILE_BYTES}
    parser = create_form_parser({"Content-Type": content_type.encode()}, on_field, on_file, config)
    parser.write(raw)
    parser.finalize()
    return fields, files


class FileRoutes:
    """The Files endpoints for OpenAI and Azure OpenAI."""

    def __init__(self, state: UpstreamState, store: FileStore, openai: OpenAIDialect, azure: OpenAIDialect) -> None:
        self.state, self.store, self.openai, self.azure = state, store, openai, azure

    def register(self, app: web.Application) -> None:
        """Add the routes under ``/v1/files`` and ``/openai/files``."""
        for prefix, dialect in (("/v1/files", self.openai), ("/openai/files", self.azure)):
            app.router.add_post(prefix, guarded(self.state, self.create, dialect))
            app.router.add_get(prefix, guarded(self.state, self.list, dialect))
            app.router.add_get(prefix + "/{file_id}", guarded(self.state, self.retrieve, dialect))
            app.router.add_delete(prefix + "/{file_id}", guarded(self.state, self.delete, dialect))
            app.router.add_get(prefix + "/{file_id}/content", guarded(self.state, self.content, dialect))

    def _found(self, request: web.Request, dialect: OpenAIDialect) -> StoredFile | web.Response:
        file_id = request.match_info["file_id"]
        stored = self.store.files.get(file_id)
        return stored or dialect.invalid(f"No such File object: {file_id}", "id", None, status=404)

    async def create(self, request: web.Request, dialect: OpenAIDialect) -> web.StreamResponse:
        """Upload: multipart ``file`` and ``purpose``."""
        try:
            fields, files = parse_upload(request.headers.get("content-type", ""), await request.read())
        except ValueError:  # python_multipart's parse errors are ValueErrors too
            return dialect.invalid("Invalid multipart form body.", None, "invalid_multipart")
        if "file" not in files:
            return dialect.missing("file")
        purpose = fields.get("purpose")
        if purpose is None:
            return dialect.missing("purpose")
        if purpose not in PURPOSES:
            return dialect.invalid(f"'{purpose}' is not one of {sorted(PURPOSES)} - 'purpose'", "purpose", None)
        filename, content = files["file"]
        stored = self.store.add(filename, purpose, content)
        return json_response(stored.to_dict(), dialect, self.state.wire)

    async def list(self, request: web.Request, dialect: OpenAIDialect) -> web.StreamResponse:
        """List with ``purpose``, ``limit``, ``after`` and ``order``."""
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            return dialect.invalid(f"Invalid value for 'order': {order!r}.", "order", "invalid_value")
        listed = self.store.listed(request.query.get("purpose"), order)
        chosen, more = page(listed, limit_of(request, FILES_PAGE, FILES_PAGE), request.query.get("after"))
        return json_response(list_body([stored.to_dict() for stored in chosen], more), dialect, self.state.wire)

    async def retrieve(self, request: web.Request, dialect: OpenAIDialect) -> web.StreamResponse:
        """One File object, or 404."""
        found = self._found(request, dialect)
        return found if isinstance(found, web.Response) else json_response(found.to_dict(), dialect, self.state.wire)

    async def content(self, request: web.Request, dialect: OpenAIDialect) -> web.StreamResponse:
        """The file's bytes, exactly as stored."""
        found = self._found(request, dialect)
        if isinstance(found, web.Response):
            return found
        headers = {dialect.request_id_header: next_id("req_fake")}
        return web.Response(body=found.content, content_type="application/octet-stream", headers=headers)

    async def delete(self, request: web.Request, dialect: OpenAIDialect) -> web.StreamResponse:
        """Forget a file."""
        found = self._found(request, dialect)
        if isinstance(found, web.Response):
            return found
        del self.store.files[found.id]
        return json_response({"id": found.id, "object": "file", "deleted": True}, dialect, self.state.wire)
