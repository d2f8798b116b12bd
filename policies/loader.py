"""The policy file format: one policy per YAML document, several documents per file, mistakes named by line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from core.config_messages import ConfigProblem, located, validation_problem, yaml_message
from policies.models import (
    KINDS,
    POLICY_ADAPTER,
    AnyPolicy,
    BatchPolicy,
    CachePolicy,
    Estimate,
    FloatRange,
    IntRange,
    Match,
    RoutePolicy,
    Target,
)

# Fields the store owns: a file that sets them would suggest it can activate or renumber a policy, which it cannot.
_STORE_FIELDS = {
    "id": "the store assigns it (`netra policies edit ID FILE.yaml` makes a new version of a policy)",
    "version": "the store numbers versions",
    "status": "a file adds a proposed policy; use `netra policies activate ID` or `retire ID`",
    "created_at": "the store records when a version was made",
}
_KIND_CLASSES: dict[str, type[BaseModel]] = {"cache": CachePolicy, "route": RoutePolicy, "batch": BatchPolicy}
_NESTED: dict[tuple[str, ...], type[BaseModel]] = {
    ("match",): Match,
    ("match", "prompt_tokens"): IntRange,
    ("match", "temperature"): FloatRange,
    ("estimate",): Estimate,
    ("targets",): Target,
}

# Clearer words than pydantic's for the mistakes a policy file invites.
_PLAIN = {
    "too_short": "should not be empty",
    "string_pattern_mismatch": "should be human:<name> or agent:<run id>",
    "string_too_short": "should not be empty",
}


class PolicyFileError(ValueError):
    """A mistake in a policy file, as one line: ``file:line: field: what is wrong``."""


def load_policies(text: str, source: str) -> list[AnyPolicy]:
    """Every policy in a YAML text (one per document); raises PolicyFileError naming the first mistake's line."""
    policies = [_policy(node, value, source) for node, value in _documents(text, source) if value is not None]
    if not policies:
        raise PolicyFileError(f"{source}: no policy in the file (expected YAML documents with `kind:` and `name:`)")
    return policies


def validate_policy(value: Any) -> AnyPolicy:
    """One policy document already parsed (the JSON form of a YAML document); raises ConfigProblem at the field."""
    return _validate(value)


def _documents(text: str, source: str) -> Iterator[tuple[yaml.Node, Any]]:
    """Each document's node tree (for line numbers) and its plain value."""
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node, loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise PolicyFileError(yaml_message(source, exc)) from exc
    finally:
        loader.dispose()


def _policy(node: yaml.Node, value: Any, source: str) -> AnyPolicy:
    try:
        return _validate(value)
    except ConfigProblem as problem:
        raise PolicyFileError(located(source, node, problem)) from None


def _validate(value: Any) -> AnyPolicy:
    if not isinstance(value, dict):
        raise ConfigProblem((), "a policy should be a mapping of fields (kind, name, match, …)")
    for field, why in _STORE_FIELDS.items():
        if field in value:
            raise ConfigProblem((field,), f"not allowed in a policy file: {why}")
    try:
        return POLICY_ADAPTER.validate_python(value)
    except ValidationError as exc:
        errors = _causes(exc.errors(include_url=False))
        problem = _problem(errors[0], value.get("kind"))
        if len(errors) > 1:
            problem.message += f" (and {len(errors) - 1} more)"
        raise problem from None


def _causes(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """The errors worth reporting, unknown fields first (a misspelled field also makes the right one "missing")."""
    # pydantic adds `too_short` to a list whose items failed; the item's own error is the one to report.
    kept = [e for e in errors if not (e["type"] == "too_short" and len(e["input"]) >= e["ctx"]["min_length"])]
    return sorted(kept or errors, key=lambda e: e["type"] != "extra_forbidden")


def _problem(error: ErrorDetails, kind: Any) -> ConfigProblem:
    """The pydantic error as a problem at a place in the document (without the union's tag in front)."""
    kinds = ", ".join(KINDS)
    if error["type"] == "union_tag_not_found":
        return ConfigProblem((), f"kind is required (one of {kinds})")
    if error["type"] == "union_tag_invalid":
        return ConfigProblem(("kind",), f"{kind!r} is not one of {kinds}")
    loc = tuple(error["loc"])
    policy_class = _KIND_CLASSES.get(str(loc[0])) if loc else None
    if policy_class is None:  # not under a kind's tag: nothing to strip, no fields to suggest
        return validation_problem(error, _NESTED)
    error = {**error, "loc": loc[1:]}
    error["msg"] = _PLAIN.get(error["type"], error["msg"].removeprefix("Value error, "))
    if error["type"] == "too_short" and loc[1:2] == ("match",):
        error["msg"] += " (omit a match field to mean any)"
    return validation_problem(error, {(): policy_class, **_NESTED})
