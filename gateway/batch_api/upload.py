"""File uploads: the client's multipart form read within the size limit, and the form sent on to the provider."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from core.errors import InvalidParameter, RequestTooLarge

# Room for the multipart framing and the small fields around the file itself.
FORM_OVERHEAD = 64 * 1024
MAX_FIELD_BYTES = 64 * 1024


@dataclass(slots=True)
class Upload:
    """One uploaded file with its purpose and the form's other fields (forwarded untouched)."""

    filename: str
    content_type: str
    data: bytes
    purpose: str
    fields: dict[str, str]


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"The uploaded file exceeds the limit of {limit} bytes.")


def limited(request: Request, limit: int) -> Request:
    """The request, refusing (413) a body that grows past `limit` bytes as it arrives, or declares it will."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise _too_large(limit)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        received += len(message.get("body", b""))
        if received > limit + FORM_OVERHEAD:
            raise _too_large(limit)
        return message

    return Request(request.scope, receive)


async def read_form(request: Request, limit: int) -> FormData:
    """The multipart form of a file upload; a malformed one is a 400."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InvalidParameter("A file upload must be sent as multipart/form-data.", param="file")
    try:
        return await limited(request, limit).form(max_files=1, max_fields=32, max_part_size=MAX_FIELD_BYTES)
    except (HTTPException, MultiPartException) as exc:
        detail = exc.detail if isinstance(exc, HTTPException) else exc.message
        raise InvalidParameter(f"The multipart form could not be read: {detail}", param="file") from None


async def upload_of(form: FormData, limit: int) -> Upload:
    """The file and purpose of an upload form, or a 400 naming the missing field."""
    file, purpose = form.get("file"), form.get("purpose")
    if not isinstance(file, UploadFile):
        raise InvalidParameter("Missing required parameter: 'file'.", code="missing_required_parameter", param="file")
    if not isinstance(purpose, str) or not purpose:
        raise InvalidParameter(
            "Missing required parameter: 'purpose'.", code="missing_required_parameter", param="purpose"
        )
    data = await file.read()
    await file.close()
    if len(data) > limit:
        raise _too_large(limit)
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str) and k not in ("file", "purpose")}
    return Upload(file.filename or "upload.jsonl", file.content_type or "application/octet-stream", data, purpose,
                  fields)


def provider_form(upload: Upload) -> aiohttp.FormData:
    """The upload as the provider takes it: the same fields, the (possibly rewritten) file last."""
    form = aiohttp.FormData()
    form.add_field("purpose", upload.purpose)
    for name, value in upload.fields.items():
        form.add_field(name, value)
    form.add_field("file", upload.data, filename=upload.filename, content_type=upload.content_type)
    return form
