"""Batch input files: every line checked before the provider sees it, its model rewritten to the served name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.errors import InvalidParameter

# The endpoints a batch line may call, as the client names them.
BATCH_URLS = frozenset({"/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses"})
MAX_CUSTOM_ID = 512

# (client's model name, endpoint) -> the name the provider knows it by; raises LineProblem when not allowed.
ModelResolver = Callable[[str, str], str]


class LineProblem(ValueError):
    """Why one line of a batch input file cannot be sent."""


@dataclass(slots=True)
class CheckedFile:
    """A batch input file as it goes upstream, and what each line asked for."""

    content: bytes
    # custom_id -> [endpoint, requested model, served model]
    lines: dict[str, list[str]] = field(default_factory=dict)


def check_batch_file(data: bytes, resolve: ModelResolver, rename_url: Callable[[str], str]) -> CheckedFile:
    """Check every line (a 400 naming the first bad one) and rewrite it for the provider (blocking: a thread)."""
    checked = CheckedFile(b"")
    out: list[bytes] = []
    # A byte-order mark (editors on Windows write one) is not part of the first line.
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = _parse(raw)
            out.append(orjson.dumps(_rewrite(line, resolve, rename_url, checked.lines)))
        except LineProblem as problem:
            raise InvalidParameter(
                f"Line {number} of the batch input file: {problem}", code="invalid_batch_input", param="file"
            ) from None
    if not out:
        raise InvalidParameter("The batch input file has no lines.", code="invalid_batch_input", param="file")
    checked.content = b"\n".join(out) + b"\n"
    return checked


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LineProblem("it is not valid JSON.") from None
    if not isinstance(line, dict):
        raise LineProblem("it must be a JSON object.")
    return line


def _rewrite(
    line: dict[str, Any], resolve: ModelResolver, rename_url: Callable[[str], str], seen: dict[str, list[str]]
) -> dict[str, Any]:
    custom_id, url, body = line.get("custom_id"), line.get("url"), line.get("body")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        raise LineProblem(f"custom_id must be a non-empty string of at most {MAX_CUSTOM_ID} characters.")
    if custom_id in seen:
        raise LineProblem(f"custom_id `{custom_id}` is used by an earlier line; each line needs its own.")
    if line.get("method") != "POST":
        raise LineProblem('method must be "POST".')
    if url not in BATCH_URLS:
        raise LineProblem(f"url must be one of {', '.join(sorted(BATCH_URLS))}.")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise LineProblem("body must be an object with a string `model`.")
    endpoint = url.removeprefix("/v1/")
    served = resolve(body["model"], endpoint)
    seen[custom_id] = [endpoint, body["model"], served]
    return {**line, "url": rename_url(url), "body": {**body, "model": served}}
