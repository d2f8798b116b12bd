"""Policies: pydantic models, the YAML file format and the pure ``decide()`` engine (imports only ``core``)."""

from __future__ import annotations

from policies.engine import Decision, Snapshot, cacheable, decide
from policies.features import Features
from policies.loader import PolicyFileError, load_policies
from policies.models import AnyPolicy, BatchPolicy, CachePolicy, Match, Policy, RoutePolicy, parse_policy

__all__ = [
    "AnyPolicy",
    "BatchPolicy",
    "CachePolicy",
    "Decision",
    "Features",
    "Match",
    "Policy",
    "PolicyFileError",
    "RoutePolicy",
    "Snapshot",
    "cacheable",
    "decide",
    "load_policies",
    "parse_policy",
]
