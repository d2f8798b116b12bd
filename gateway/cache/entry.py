"""A cached answer: the complete JSON body as the provider returned it, with what the ledger needs to price it.

Serialised compactly as one JSON header line (orjson, no raw newlines) followed by the body bytes as they are,
so reading an entry never re-encodes the body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from core.usage import Usage

_CODEC_VERSION = 1


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """One cached answer: `body` is a chat.completion, text_completion or embeddings list object."""

    endpoint: str
    body: bytes
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    usage_reported: bool  # False: the provider reported no usage (the tokens are the gateway's estimate or 0)
    stored_at: float  # epoch seconds
    request_id: str  # the request whose answer this is (the ledger names it on every reuse)
    model: str  # the model that served it

    def usage(self) -> Usage:
        """The tokens of the original call, in the shape the ledger prices."""
        return Usage(
            self.prompt_tokens, self.completion_tokens, self.cached_tokens, reported=self.usage_reported
        )

    def age(self, now: float) -> int:
        """Whole seconds since the answer was stored (the `age` header)."""
        return max(0, int(now - self.stored_at))

    def to_bytes(self) -> bytes:
        """The entry as stored: a JSON header line, then the body."""
        header = orjson.dumps([
            _CODEC_VERSION, self.endpoint, self.prompt_tokens, self.completion_tokens, self.cached_tokens,
            self.usage_reported, self.stored_at, self.request_id, self.model,
        ])
        return header + b"\n" + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> CachedEntry:
        """Read a stored entry; ValueError when it is not one (another version, or damaged)."""
        header, newline, body = data.partition(b"\n")
        try:
            fields = orjson.loads(header)
        except orjson.JSONDecodeError as exc:
            raise ValueError("not a cache entry") from exc
        if not newline or not isinstance(fields, list) or len(fields) != 9 or fields[0] != _CODEC_VERSION:
            raise ValueError("not a cache entry of this version")
        endpoint, prompt, completion, cached, reported, stored_at, request_id, model = fields[1:]
        return cls(endpoint, body, prompt, completion, cached, reported, stored_at, request_id, model)

    @property
    def size(self) -> int:
        """Bytes this entry holds, roughly what it costs in memory (the memory cache's bound counts these)."""
        return len(self.body) + len(self.endpoint) + len(self.request_id) + len(self.model) + 200


def usage_from_body(reply: dict[str, Any]) -> Usage | None:
    """The usage object of an OpenAI-shaped answer, when it has one."""
    usage = reply.get("usage")
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = (details.get("cached_tokens") if isinstance(details, dict) else None) or 0
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens") or 0
    if type(prompt) is not int or type(completion) is not int or type(cached) is not int:
        return None
    return Usage(prompt, completion, cached)


def cacheable_reply(body: bytes | dict[str, Any]) -> bool:
    """Whether a complete answer may be cached: no error, and no choice cut short (finish_reason "length")."""
    if isinstance(body, bytes):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
    if not isinstance(body, dict) or body.get("error") is not None:
        return False
    if body.get("object") == "list":
        return isinstance(body.get("data"), list)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") not in (None, "length") for c in choices)


def entry_from_reply(
    body: bytes, *, endpoint: str, request_id: str, stored_at: float, usage: Usage | None = None,
    model: str | None = None,
) -> CachedEntry | None:
    """The entry for a complete (non-streamed, status 200) answer, or None when it must not be cached.

    `usage` defaults to the body's own; `model` to the body's `model` field. An embeddings answer given with both
    is stored unread: it cannot be cut short, and parsing megabytes of vectors again would block the event loop
    (3 MB, 100 vectors of 1536: ~25 ms).
    """
    if endpoint == "embeddings" and usage is not None and model is not None:
        return make_entry(body, endpoint=endpoint, request_id=request_id, stored_at=stored_at, usage=usage, model=model)
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not cacheable_reply(reply):
        return None
    return make_entry(
        body, endpoint=endpoint, request_id=request_id, stored_at=stored_at,
        usage=usage or usage_from_body(reply), model=model or str(reply.get("model") or ""),
    )


def make_entry(
    body: bytes, *, endpoint: str, request_id: str, stored_at: float, usage: Usage | None, model: str
) -> CachedEntry:
    """An entry from its parts (no check that the body may be cached)."""
    tokens = usage or Usage(reported=False)
    return CachedEntry(
        endpoint, body, tokens.prompt_tokens, tokens.completion_tokens, tokens.cached_tokens,
        usage is not None and tokens.reported, stored_at, request_id, model,
    )
