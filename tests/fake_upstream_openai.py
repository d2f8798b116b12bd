"""OpenAI legacy completions, embeddings and the model list as the fake upstream answers them."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
from functools import lru_cache
from typing import Any

import orjson

from tests.fake_upstream_behaviour import (
    DEFAULT_REPLY,
    SSE_DONE,
    Behaviour,
    Stream,
    echo_of,
    next_id,
    split_pieces,
    sse_data,
    tokens_for,
)
from tests.fake_upstream_chat import FINGERPRINT, choice_count

DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 4096
# OpenAI's embedding models: at most this many tokens per input, and this many inputs per request.
MAX_INPUT_TOKENS = 8192
MAX_INPUTS = 2048
MODEL_IDS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "o3-mini", "text-embedding-3-small", "text-embedding-3-large")
MODELS_BODY = orjson.dumps(
    {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": 1715367049, "owned_by": "system"} for name in MODEL_IDS],
    }
)


def model_body(model: str) -> bytes:
    """One Model object."""
    return orjson.dumps({"id": model, "object": "model", "created": 1715367049, "owned_by": "system"})


def _prompt_parts(prompt: Any) -> list[Any]:
    """A prompt or embedding input as a list of items (strings or token lists)."""
    if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and isinstance(prompt[0], int)):
        return [prompt]
    return prompt if isinstance(prompt, list) else []


def _item_tokens(item: Any) -> int:
    return len(item) if isinstance(item, list) else tokens_for(len(str(item)))


def input_tokens(prompt: Any) -> int:
    """Prompt tokens of a completions prompt or an embeddings input."""
    return max(1, sum(_item_tokens(item) for item in _prompt_parts(prompt)))


def completion_text(body: dict[str, Any]) -> str:
    """The default reply, or the echo of an ``echo:`` prompt."""
    prompt = body.get("prompt")
    first = prompt if isinstance(prompt, str) else ""
    echo = echo_of(first)
    return DEFAULT_REPLY if echo is None else echo


def completion_usage(body: dict[str, Any], text: str) -> dict[str, int]:
    """Usage of a legacy completion."""
    prompt, completion = input_tokens(body.get("prompt")), tokens_for(len(text)) * choice_count(body)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(body: dict[str, Any], model: str, behaviour: Behaviour) -> dict[str, Any]:
    """A text_completion object."""
    text = completion_text(body)
    choices = [
        {"text": text, "index": index, "logprobs": None, "finish_reason": "stop"} for index in range(choice_count(body))
    ]
    result: dict[str, Any] = {
        "id": next_id("cmpl-fake"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "system_fingerprint": FINGERPRINT,
    }
    if not behaviour.no_usage:
        result["usage"] = completion_usage(body, text)
    return result


def completion_chunks(body: dict[str, Any], model: str, behaviour: Behaviour) -> Stream:
    """Every SSE frame of a streamed legacy completion."""
    text, n = completion_text(body), choice_count(body)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True and not behaviour.no_usage
    base: dict[str, Any] = {"id": next_id("cmpl-fake"), "object": "text_completion", "created": int(time.time())}
    tail: dict[str, Any] = {"model": model, "system_fingerprint": FINGERPRINT}
    if include_usage:
        tail["usage"] = None
    steps = [(piece, None) for piece in split_pieces(text, behaviour.pieces)] + [("", "stop")]
    frames = [
        sse_data({**base, "choices": [{"text": t, "index": i, "logprobs": None, "finish_reason": f}], **tail})
        for t, f in steps
        for i in range(n)
    ]
    if include_usage:
        frames.append(sse_data({**base, **tail, "choices": [], "usage": completion_usage(body, text)}))
    frames.append(SSE_DONE)
    return Stream(frames, fail_after=n)


@lru_cache(maxsize=8192)
def embedding_vector(text: str, dimensions: int) -> tuple[tuple[float, ...], str]:
    """A deterministic unit vector for text, as floats and as OpenAI's base64 of little-endian float32."""
    raw = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    values = [value / 2**31 - 1.0 for value in struct.unpack(f"<{dimensions}I", raw)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(value / norm for value in values))
    return struct.unpack(f"<{dimensions}f", packed), base64.b64encode(packed).decode()


def _dimensions(body: dict[str, Any]) -> int:
    dimensions = body.get("dimensions")
    return min(max(dimensions, 1), MAX_DIMENSIONS) if isinstance(dimensions, int) else DEFAULT_DIMENSIONS


def embeddings_refusal(body: dict[str, Any]) -> tuple[str, str | None] | None:
    """OpenAI's refusal of an embeddings request with too many inputs or an input over the model's context."""
    items = _prompt_parts(body.get("input"))
    if len(items) > MAX_INPUTS:
        return f"Invalid 'input': array too long. Expected an array with maximum length {MAX_INPUTS}.", "input"
    longest = max((_item_tokens(item) for item in items), default=0)
    if longest > MAX_INPUT_TOKENS:
        return (
            f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you requested {longest} tokens"
            f" ({longest} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
            None,
        )
    return None


def _embedding_item(item: Any, index: int, dimensions: int, use_base64: bool, behaviour: Behaviour) -> dict[str, Any]:
    data: dict[str, Any] = {
        "object": "embedding", "index": index, "embedding": embedding_vector(str(item), dimensions)[use_base64],
    }
    if behaviour.item_usage:
        tokens = _item_tokens(item)
        data["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return data


def embeddings(body: dict[str, Any], model: str, behaviour: Behaviour) -> dict[str, Any]:
    """A CreateEmbeddingResponse: one vector per input item, floats or base64 as asked."""
    dimensions, use_base64 = _dimensions(body), body.get("encoding_format") == "base64"
    items = _prompt_parts(body.get("input"))
    data = [_embedding_item(item, index, dimensions, use_base64, behaviour) for index, item in enumerate(items)]
    if behaviour.shuffled:
        data.reverse()
    result: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if not behaviour.no_usage:
        tokens = input_tokens(body.get("input"))
        result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return result
