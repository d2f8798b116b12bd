"""Policy models: what a policy matches and what it does, a discriminated union on ``kind``.

A policy is immutable; a change is a new version with the same ``id`` (the store assigns ``id``, ``version``,
``status`` and ``created_at``). ``policy.model_dump(mode="json")`` round-trips through :func:`parse_policy`.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    model_validator,
)

Endpoint = Literal["chat/completions", "completions", "embeddings", "responses"]
ENDPOINTS: tuple[Endpoint, ...] = ("chat/completions", "completions", "embeddings", "responses")
Status = Literal["proposed", "active", "retired"]
# Absent temperature means the OpenAI default, so a temperature range treats it as this value.
DEFAULT_TEMPERATURE = 1.0

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> int:
    """Seconds from ``"30s"``, ``"15m"``, ``"1h"``, ``"7d"`` or a whole number of seconds; positive only."""
    if isinstance(value, bool):  # bool is an int subclass: `ttl: true` is a mistake, not one second
        raise ValueError("should be a duration such as 30s, 15m, 1h or 7d")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (found := _DURATION.match(value)):
        seconds = int(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    else:
        raise ValueError("should be a duration such as 30s, 15m, 1h or 7d")
    if seconds <= 0:
        raise ValueError("should be a positive duration")
    return seconds


Duration = Annotated[int, BeforeValidator(parse_duration)]
Names = Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IntRange(_Frozen):
    """An inclusive integer range; an omitted bound is open."""

    min: StrictInt | None = None
    max: StrictInt | None = None

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    def contains(self, value: int) -> bool:
        """Whether ``value`` lies within the bounds (inclusive)."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class FloatRange(_Frozen):
    """An inclusive range of numbers; an omitted bound is open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies within the bounds (inclusive)."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class Match(_Frozen):
    """Which requests a policy applies to: every field omitted means any; given fields must all hold."""

    tenants: Names | None = None
    keys: Names | None = None
    models: Names | None = None
    endpoints: Annotated[tuple[Endpoint, ...], Field(min_length=1)] | None = None
    tags: Names | None = None  # every tag must be present in the request's x-netra-tags
    stream: StrictBool | None = None
    tools: StrictBool | None = None  # tools or functions present in the request
    prompt_tokens: IntRange | None = None  # the gateway's estimate of the prompt's tokens
    temperature: FloatRange | None = None  # absent temperature counts as DEFAULT_TEMPERATURE


class Estimate(_Frozen):
    """The saving projected when the policy was proposed."""

    monthly_saving_usd: Decimal
    traffic_share: Annotated[float, Field(ge=0.0, le=1.0)]


class _PolicyBase(_Frozen):
    id: str | None = None  # stable across versions; the store assigns it
    version: Annotated[StrictInt, Field(ge=1)] = 1
    name: Annotated[str, Field(min_length=1)]
    status: Status = "proposed"
    author: Annotated[str, Field(pattern=r"^(human|agent):\S+$")] = "human:unknown"
    rationale: str = ""
    estimate: Estimate | None = None
    priority: StrictInt = 0  # higher wins when several policies of one kind match
    created_at: datetime | None = None
    match: Match = Match()


class CachePolicy(_PolicyBase):
    """Serve repeated requests from the exact response cache for ``ttl`` seconds."""

    kind: Literal["cache"]
    ttl: Duration
    cache_nondeterministic: StrictBool = False  # also cache temperature > 0 without a seed, and n > 1

    @property
    def ttl_seconds(self) -> int:
        """How long an entry lives, in seconds."""
        return self.ttl


class Target(_Frozen):
    """A model a route policy sends traffic to, with its share of the weighted split."""

    model: Annotated[str, Field(min_length=1)]
    weight: Annotated[StrictInt, Field(gt=0)] = 1


class RoutePolicy(_PolicyBase):
    """Send matching traffic to other models (one target rewrites; several split by weight), with fallbacks."""

    kind: Literal["route"]
    targets: Annotated[tuple[Target, ...], Field(min_length=1)]
    fallbacks: tuple[Annotated[str, Field(min_length=1)], ...] = ()


class BatchPolicy(_PolicyBase):
    """Micro-batch concurrent embedding requests; ``defer`` also allows the deferred (Batch API) lane."""

    kind: Literal["batch"]
    window_ms: Annotated[StrictInt, Field(ge=0)] = 5  # how long the first request waits for company
    max_inputs: Annotated[StrictInt, Field(gt=0)] = 512  # flush earlier when this many inputs are gathered
    defer: StrictBool = False


# `AnyPolicy` for annotations; `Policy` (the same union with its discriminator) for validation.
AnyPolicy = CachePolicy | RoutePolicy | BatchPolicy
Policy = Annotated[AnyPolicy, Field(discriminator="kind")]
Kind = Literal["cache", "route", "batch"]
KINDS: tuple[Kind, ...] = ("cache", "route", "batch")
POLICY_ADAPTER: TypeAdapter[AnyPolicy] = TypeAdapter(Policy)


def parse_policy(data: dict[str, Any]) -> AnyPolicy:
    """A validated policy from a plain mapping (a YAML document or a stored JSON row); raises ValidationError."""
    return POLICY_ADAPTER.validate_python(data)
