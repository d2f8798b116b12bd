"""Policies as the API shows them: versions, events, the filters of the list, the diff between two versions."""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml

from core.config_messages import ConfigProblem, place
from core.errors import InvalidParameter
from core.models import PolicyVersion
from policies.loader import validate_policy
from policies.models import AnyPolicy

MISSING = re.compile(r"^(\w+) is required")


def parse_document(document: dict[str, Any]) -> AnyPolicy:
    """The JSON form of a policy file's YAML document, validated as the CLI validates it; a 400 naming the field."""
    try:
        return validate_policy(document)
    except ConfigProblem as problem:
        loc, missing = problem.loc, MISSING.match(problem.message)
        if missing:  # "ttl is required" is about the field ttl, though it sits at the place holding it
            loc = (*loc, missing.group(1))
        where = place(loc)
        message = f"{where}: {problem.message}" if where and not missing else problem.message
        raise InvalidParameter(message, code="invalid_policy", param=where or None) from None


def applies_to(row: PolicyVersion, tenant: str) -> bool:
    """Whether a policy matches a tenant's requests: it names the tenant, or names no tenant (every tenant)."""
    match = row.document.get("match") or {}
    tenants = match.get("tenants") if isinstance(match, dict) else None
    return tenants is None or tenant in tenants


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _yaml(document: dict[str, Any]) -> list[str]:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).splitlines(keepends=True)


def diff(older: PolicyVersion, newer: PolicyVersion) -> dict[str, Any]:
    """What changed between two versions: each field path with its values, and a unified diff of their YAML."""
    before, after = _flatten(older.document), _flatten(newer.document)
    changes = [
        {"path": path, "before": before.get(path), "after": after.get(path)}
        for path in sorted(set(before) | set(after)) if before.get(path) != after.get(path)
    ]
    unified = difflib.unified_diff(_yaml(older.document), _yaml(newer.document),
                                   f"version {older.version}", f"version {newer.version}")
    return {"id": newer.policy_id, "from": older.version, "to": newer.version, "changes": changes,
            "unified": "".join(unified)}
