"""Policies compiled for matching: per kind, candidate lists keyed by endpoint and requested model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from policies.features import Features
from policies.models import DEFAULT_TEMPERATURE, ENDPOINTS, AnyPolicy, Match

P = TypeVar("P", bound=AnyPolicy)
Check = Callable[[Features], bool]


def _checks(match: Match) -> tuple[Check, ...]:
    """One check per match field that is set, except endpoints, models (the index) and tenants (checked inline)."""
    checks: list[Check] = []
    # Each closure captures its own local, bound once: a policy never changes after the snapshot is built.
    if match.keys is not None:
        keys = frozenset(match.keys)
        checks.append(lambda f: f.key_id in keys)
    if match.tags is not None:
        tags = frozenset(match.tags)
        checks.append(lambda f: tags <= f.tags)
    if (stream := match.stream) is not None:
        checks.append(lambda f: f.stream == stream)
    if (tools := match.tools) is not None:
        checks.append(lambda f: f.tools == tools)
    if (tokens := match.prompt_tokens) is not None:
        checks.append(lambda f: tokens.contains(f.prompt_tokens))
    if (temperature := match.temperature) is not None:
        checks.append(_temperature_check(temperature.min, temperature.max))
    return tuple(checks)


def _temperature_check(low: float | None, high: float | None) -> Check:
    def check(f: Features) -> bool:
        t = DEFAULT_TEMPERATURE if f.temperature is None else f.temperature
        return (low is None or t >= low) and (high is None or t <= high)

    return check


class Candidate(Generic[P]):
    """A policy with the checks its match needs beyond endpoint and model."""

    __slots__ = ("checks", "policy", "tenants")

    def __init__(self, policy: P) -> None:
        self.policy = policy
        # Most policies name tenants and most candidates fail there: a set lookup, not a call, rejects them.
        self.tenants = None if policy.match.tenants is None else frozenset(policy.match.tenants)
        self.checks = _checks(policy.match)


# The key under which requests for an endpoint or model that no policy names find the wildcard policies.
_OTHER = None


class KindIndex(Generic[P]):
    """The active policies of one kind, best first, pre-filtered by endpoint and requested model."""

    __slots__ = ("_table",)

    def __init__(self, ordered: Sequence[P]) -> None:
        candidates = [Candidate(policy) for policy in ordered]
        models = {m for c in candidates for m in c.policy.match.models or ()}
        self._table: dict[str | None, dict[str | None, tuple[Candidate[P], ...]]] = {
            endpoint: {model: _narrowed(candidates, endpoint, model) for model in (*models, _OTHER)}
            for endpoint in (*ENDPOINTS, _OTHER)
        }

    def first(self, features: Features) -> P | None:
        """The best policy whose match holds for the request, or None."""
        by_model = self._table.get(features.endpoint) or self._table[_OTHER]
        tenant = features.tenant
        for candidate in by_model.get(features.model) or by_model[_OTHER]:
            if candidate.tenants is not None and tenant not in candidate.tenants:
                continue
            for check in candidate.checks:
                if not check(features):
                    break
            else:
                return candidate.policy
        return None


def _narrowed(candidates: Iterable[Candidate[P]], endpoint: str | None, model: str | None) -> tuple[Candidate[P], ...]:
    """The candidates (order kept) whose endpoints and models admit this endpoint and model (None: unnamed)."""
    return tuple(
        c
        for c in candidates
        if _admits(c.policy.match.endpoints, endpoint) and _admits(c.policy.match.models, model)
    )


def _admits(names: Sequence[str] | None, value: str | None) -> bool:
    return names is None or (value is not None and value in names)
