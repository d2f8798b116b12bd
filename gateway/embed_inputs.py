"""The pure side of embeddings micro-batching: what a request's inputs are, which requests may share a call.

OpenAI's `input` is a string, a list of strings, a list of token ids (ONE input) or a list of token-id lists.
Requests are merged only when everything but their inputs is the same: tenant, the deployment that serves them,
every other body field (known or not), the batch policy, and the kind of input (strings never mix with tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from core.usage import estimate_tokens

InputKind = Literal["strings", "tokens"]
GroupKey = tuple[str, ...]
# OpenAI takes at most this many inputs in one embeddings request.
OPENAI_MAX_INPUTS = 2048
# OpenAI refuses an embeddings request of more than 300 000 tokens; estimates are rough, so stay well under it.
MAX_BATCH_TOKENS = 200_000
# Fields that differ between members by design: each member's inputs are merged, the model is the deployment's.
_MERGED_FIELDS = frozenset({"input", "model"})


@dataclass(frozen=True, slots=True)
class Inputs:
    """A request's embedding inputs as a list, with each one's estimated size in tokens."""

    kind: InputKind
    items: tuple[Any, ...]
    sizes: tuple[int, ...]

    @property
    def tokens(self) -> int:
        """The estimated tokens of every input."""
        return sum(self.sizes)


def _token_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(token) is int for token in value)


def inputs_of(value: Any) -> Inputs | None:
    """The inputs of a body's `input`, or None for a shape batching leaves alone (the provider judges it)."""
    if isinstance(value, str):
        return Inputs("strings", (value,), (estimate_tokens(len(value)),))
    if not isinstance(value, list) or not value:
        return None
    if all(type(token) is int for token in value):
        return Inputs("tokens", (value,), (len(value),))
    if all(isinstance(item, str) for item in value):
        return Inputs("strings", tuple(value), tuple(estimate_tokens(len(item)) for item in value))
    if all(_token_list(item) for item in value):
        return Inputs("tokens", tuple(value), tuple(len(item) for item in value))
    return None


def group_key(
    tenant_id: str, destination: tuple[str, ...], policy: str, body: dict[str, Any], kind: str
) -> GroupKey:
    """Requests with equal keys may go upstream as one: same tenant, destination, policy, input kind, other fields."""
    rest = {name: value for name, value in body.items() if name not in _MERGED_FIELDS}
    fields = orjson.dumps(rest, option=orjson.OPT_SORT_KEYS).decode()
    # The destination's length first: its names can never run into the fields after them.
    return (tenant_id, str(len(destination)), *destination, policy, kind, fields)


def max_inputs(configured: int) -> int:
    """A policy's flush size, within OpenAI's per-request limit."""
    return max(1, min(configured, OPENAI_MAX_INPUTS))


def merged_body(first: dict[str, Any], inputs: Sequence[Inputs]) -> dict[str, Any]:
    """The body of the shared call: the first member's fields (all members agree on them) and every input, in order."""
    return {**first, "input": [item for member in inputs for item in member.items]}
