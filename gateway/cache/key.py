"""The exact cache's key: tenant + endpoint + the request in a canonical form, hashed.

Two requests share a key only when they are for the same tenant and endpoint and ask the same thing:
- fields that cannot change the answer are dropped: EXCLUDED below (`user`, `stream`, `stream_options`,
  `metadata`, `store`, `service_tier`, and `safety_identifier` / `prompt_cache_key`, which OpenAI documents as
  abuse-tracking and provider prompt-cache hints);
- a top-level null is an absent field (OpenAI reads both as the default);
- a field at its documented default is dropped (DEFAULTS below: `n: 1` and an absent `n` are one request);
- sampling numbers compare as numbers (`temperature: 0` and `0.0`), a single `stop` string is a one-item list;
- object keys are sorted at every depth (JSON objects are unordered).
So a streamed and a non-streamed request with the same canonical form share a key. The tenant is hashed with the
request as well as written in the key's cluster hash tag, so no tenant name can make two tenants' keys meet.
Nested values are not rewritten (a message's `name: null` stays), and `max_tokens` / `max_completion_tokens`
stay apart: only what is certainly the same request is merged.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

KEY_PREFIX = "netra:cache:"
_FORMAT = b"netra-cache-key/1"  # changes when the canonical form changes, so old entries are simply never found

EXCLUDED = frozenset(
    {"user", "stream", "stream_options", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
)
_SAMPLING = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0, "n": 1}
DEFAULTS: dict[str, dict[str, Any]] = {
    "chat/completions": {
        **_SAMPLING, "logprobs": False, "logit_bias": {}, "response_format": {"type": "text"},
        "parallel_tool_calls": True,
    },
    "completions": {**_SAMPLING, "best_of": 1, "echo": False, "max_tokens": 16, "logit_bias": {}},
    "embeddings": {"encoding_format": "float"},
}
_FLOATS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")


def canonical_request(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request reduced to what can change the answer (a new top-level dict; nested values are shared)."""
    defaults = DEFAULTS.get(endpoint, {})
    canon = {
        name: value for name, value in body.items()
        if value is not None and name not in EXCLUDED and (name not in defaults or defaults[name] != value)
    }
    for name in _FLOATS:
        value = canon.get(name)
        if type(value) is int:  # bool is not int here: a wrong-typed value stays as sent, for the provider to judge
            canon[name] = float(value)
    if isinstance(canon.get("stop"), str):
        canon["stop"] = [canon["stop"]]
    _drop_default_tool_choice(canon)
    return canon


def _drop_default_tool_choice(canon: dict[str, Any]) -> None:
    # OpenAI's default is "auto" when tools are given and "none" when not.
    default = "auto" if canon.get("tools") else "none"
    if canon.get("tool_choice") == default:
        del canon["tool_choice"]
    if not canon.get("tools"):
        canon.pop("parallel_tool_calls", None)  # means nothing without tools


def canonical_hash(endpoint: str, body: dict[str, Any]) -> str:
    """The hex blake2b digest of endpoint and canonical request: equal for requests that ask the same thing.

    Tenant-free, so the ledger can log it as `request_hash` and the optimizer can count repeats in logged traffic
    exactly as the cache will; `key_from_hash` then costs a fraction of a microsecond.
    """
    canon = orjson.dumps(canonical_request(endpoint, body), option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(_FORMAT, digest_size=16)
    digest.update(_framed(endpoint))  # length-prefixed: no endpoint's bytes can run into the request's
    digest.update(canon)
    return digest.hexdigest()


def key_from_hash(tenant_id: str, request_hash: str) -> str:
    """The cache key of a request of `canonical_hash` for one tenant: `netra:cache:{<tenant>}:<hash>`.

    The hash tag keeps a tenant on one cluster slot. The tenant is hashed in as well, so no tenant name can make
    two tenants' keys meet. Never sent to a client: it would let one probe what is cached.
    """
    digest = hashlib.blake2b(_framed(tenant_id), digest_size=16)
    digest.update(request_hash.encode())
    return f"{KEY_PREFIX}{{{tenant_id}}}:{digest.hexdigest()}"


def cache_key(tenant_id: str, endpoint: str, body: dict[str, Any]) -> str:
    """The cache key of a request for one tenant (`key_from_hash` of its `canonical_hash`)."""
    return key_from_hash(tenant_id, canonical_hash(endpoint, body))


def _framed(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(4, "big") + data


def is_deterministic(endpoint: str, body: dict[str, Any]) -> bool:
    """Whether the request asks for one reproducible answer: temperature 0, top_p 0 or a seed, and n 1.

    Embeddings always are. Anything else is cached only by a policy with `cache_nondeterministic: true`.
    """
    if endpoint == "embeddings":
        return True
    if body.get("n") not in (None, 1) or body.get("best_of") not in (None, 1):
        return False
    pinned = _is_zero(body.get("temperature")) or _is_zero(body.get("top_p"))
    return pinned or (body.get("seed") is not None and type(body.get("seed")) is not bool)


def _is_zero(value: Any) -> bool:
    return type(value) in (int, float) and value == 0
