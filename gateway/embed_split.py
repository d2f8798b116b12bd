"""Splitting one upstream embeddings answer back into each member's own answer, usage included.

The provider's `data` is put in `index` order and cut into each member's slice, indexes renumbered from 0. Each
member's `usage` is its share of the provider's total: exact when every data item carries its own token count (some
OpenAI-compatible servers send one), else apportioned by each input's estimated size with the largest-remainder
method, so the shares always add up to the provider's total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from core.errors import UpstreamFailed
from core.usage import Usage
from gateway.providers.openai_stream import usage_from_openai

MISMATCH = "The provider's embeddings answer does not match the request (wrong number or order of vectors)."


@dataclass(frozen=True, slots=True)
class Part:
    """One member's answer: its JSON body and its tokens (None when the provider reported none)."""

    body: bytes
    usage: Usage | None


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (equally if they are all 0), the shares adding up to `total` exactly.

    Largest remainder: everyone gets the floor of their quota; the units left go to the largest remainders, ties to
    the earlier member.
    """
    if not weights:
        return []
    used = list(weights) if sum(weights) > 0 else [1] * len(weights)
    whole = sum(used)
    shares = [total * weight // whole for weight in used]
    left = total - sum(shares)
    ranked = sorted(range(len(used)), key=lambda i: (-(total * used[i] % whole), i))
    for index in ranked[:left]:
        shares[index] += 1
    return shares


def ordered_data(answer: Any, expected: int) -> list[dict[str, Any]]:
    """The answer's `data` in index order; an answer with another number of vectors, or broken indexes, is a 502."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != expected or not all(isinstance(item, dict) for item in data):
        raise UpstreamFailed(MISMATCH, code="upstream_error")
    indexes = [item.get("index") for item in data]
    if all(index is None for index in indexes):
        return data  # no indexes at all: the vectors come in input order
    if sorted(index for index in indexes if type(index) is int) != list(range(expected)):
        raise UpstreamFailed(MISMATCH, code="upstream_error")
    return sorted(data, key=lambda item: int(item["index"]))


def item_tokens(item: dict[str, Any]) -> int | None:
    """The tokens one data item reports for its own input (`usage.prompt_tokens` or `prompt_tokens`), if any."""
    usage = item.get("usage")
    count = usage.get("prompt_tokens") if isinstance(usage, dict) else item.get("prompt_tokens")
    return count if type(count) is int and count >= 0 else None


def item_weights(data: Sequence[dict[str, Any]], estimates: Sequence[int]) -> list[int]:
    """Each input's weight in the usage split: its own reported count when every item has one, else its estimate."""
    counts = [item_tokens(item) for item in data]
    exact = [count for count in counts if count is not None]
    return exact if len(exact) == len(counts) else list(estimates)


def member_usages(usage: Any, weights: Sequence[int], sizes: Sequence[int]) -> list[dict[str, int]] | None:
    """Each member's `usage` object (members own `sizes` consecutive inputs), or None when the provider sent none."""
    if not isinstance(usage, dict):
        return None
    prompt, total = usage.get("prompt_tokens"), usage.get("total_tokens")
    prompt = prompt if type(prompt) is int else sum(weights)
    total = total if type(total) is int else prompt
    starts = [sum(sizes[:index]) for index in range(len(sizes))]
    member_weights = [sum(weights[start : start + size]) for start, size in zip(starts, sizes, strict=True)]
    prompts = apportion(prompt, member_weights)
    others = apportion(max(total - prompt, 0), member_weights)
    return [{"prompt_tokens": p, "total_tokens": p + o} for p, o in zip(prompts, others, strict=True)]


def split_answer(raw: bytes, sizes: Sequence[int], estimates: Sequence[int]) -> list[Part]:
    """Every member's answer from the provider's answer to the shared call (`sizes`: inputs per member, in order)."""
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamFailed("The provider sent a response that is not JSON.", code="upstream_error") from None
    data = ordered_data(answer, sum(sizes))
    usages = member_usages(answer.get("usage"), item_weights(data, estimates), sizes)
    rest = {name: value for name, value in answer.items() if name not in ("object", "data", "model", "usage")}
    parts, start = [], 0
    for number, size in enumerate(sizes):
        items = [{**item, "index": index} for index, item in enumerate(data[start : start + size])]
        start += size
        body: dict[str, Any] = {"object": answer.get("object", "list"), "data": items, "model": answer.get("model")}
        body.update(rest)
        if usages is not None:
            body["usage"] = usages[number]
        parts.append(Part(orjson.dumps(body), usage_from_openai(usages[number]) if usages else None))
    return parts
