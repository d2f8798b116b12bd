"""The named schemas of the OpenAPI document: what the REST API takes and returns (JSON Schema 2020-12)."""

from __future__ import annotations

from typing import Any

from admin.apispec import Schema, ref
from core.models import TIERS
from policies.models import POLICY_ADAPTER

STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
MONEY = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "description": "US dollars, two decimals"}
# Fields the store owns: a document sent to the API must not set them (as in a policy file).
_STORE_FIELDS = ("id", "version", "status", "created_at")


def obj(properties: dict[str, Any], required: tuple[str, ...] | None = None, **extra: Any) -> Schema:
    """An object schema; every property required unless told otherwise."""
    return {"type": "object", "properties": properties,
            "required": list(properties if required is None else required), **extra}


def _policy_schemas() -> dict[str, Schema]:
    """The policy document (the JSON form of a policy file's YAML document), from the pydantic models."""
    schema = POLICY_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    defs: dict[str, Schema] = schema.pop("$defs")
    for kind in ("CachePolicy", "RoutePolicy", "BatchPolicy"):
        for name in _STORE_FIELDS:
            defs[kind]["properties"].pop(name, None)
    duration = {"anyOf": [{"type": "integer", "minimum": 1},
                          {"type": "string", "pattern": r"^\s*\d+\s*[smhd]\s*$"}],
                "description": "seconds, or a duration such as 30s, 15m, 1h, 7d"}
    defs["CachePolicy"]["properties"]["ttl"] = duration
    return {**defs, "PolicyDocument": schema}


ERROR = obj({"error": obj({
    "message": STRING, "type": STRING, "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]},
})})
TENANT = obj({
    "id": STRING, "name": STRING, "tier": {"enum": list(TIERS)}, "status": {"enum": ["active", "suspended"]},
    "hourly_request_limit": {"type": ["integer", "null"]}, "fee_rate": {"type": ["string", "null"]},
    "created_at": TIME,
})
API_KEY = obj({
    "id": STRING, "tenant_id": STRING, "prefix": STRING, "status": {"enum": ["active", "revoked", "expired"]},
    "models": {"type": "array", "items": STRING}, "created_at": TIME, "expires_at": NULLABLE_TIME,
    "revoked_at": NULLABLE_TIME,
})
POLICY_VERSION = obj({
    "id": STRING, "version": INTEGER, "kind": {"enum": ["cache", "route", "batch"]},
    "status": {"enum": ["proposed", "active", "retired", "superseded"]}, "priority": INTEGER, "name": STRING,
    "author": STRING, "created_at": TIME, "document": {"type": "object"},
})
POLICY_EVENT = obj({"version": INTEGER, "action": STRING, "actor": STRING, "at": TIME})
INVOICE = obj({
    "number": {"type": ["string", "null"]}, "tenant": STRING, "tenant_id": STRING, "tier": STRING, "period": STRING,
    "status": {"enum": ["draft", "issued", "paid", "void"]}, "currency": STRING, "calls": INTEGER,
    "baseline_cost": MONEY, "actual_cost": MONEY, "savings": MONEY, "fee_rate": STRING, "fee": MONEY,
    "net_benefit": MONEY, "lines": {"type": "array", "items": {"type": "object"}}, "content_hash": STRING,
}, additionalProperties=True)
INVOICE_SUMMARY = obj({
    "number": STRING, "tenant": STRING, "period": STRING, "status": {"enum": ["issued", "paid", "void"]},
    "savings": MONEY, "fee": MONEY, "net_benefit": MONEY, "issued_at": TIME, "paid_at": NULLABLE_TIME,
    "voided_at": NULLABLE_TIME, "replaced_by": {"type": ["string", "null"]},
})
USER = obj({"id": STRING, "email": STRING, "role": {"enum": ["viewer", "finance", "admin"]}, "disabled": BOOLEAN,
            "created_at": TIME, "disabled_at": NULLABLE_TIME})
AUDIT_ENTRY = obj({
    "id": INTEGER, "at": TIME, "actor": STRING, "action": STRING, "target_type": STRING, "target_id": STRING,
    "before": {"type": ["object", "null"]}, "after": {"type": ["object", "null"]},
    "address": {"type": ["string", "null"]},
})


def components() -> dict[str, Schema]:
    """Every named schema."""
    return {
        "Error": ERROR, "Tenant": TENANT, "ApiKey": API_KEY, "PolicyVersion": POLICY_VERSION,
        "PolicyEvent": POLICY_EVENT, "Invoice": INVOICE, "InvoiceSummary": INVOICE_SUMMARY, "User": USER,
        "AuditEntry": AUDIT_ENTRY, **_policy_schemas(),
    }


NEW_KEY = {"allOf": [ref("ApiKey"), obj({"key": {**STRING, "description": "the key itself, shown this once"}})]}
POLICY_HISTORY = obj({
    "id": STRING, "current": ref("PolicyVersion"), "versions": {"type": "array", "items": ref("PolicyVersion")},
    "events": {"type": "array", "items": ref("PolicyEvent")},
})
POLICY_DIFF = obj({
    "id": STRING, "from": INTEGER, "to": INTEGER, "unified": STRING,
    "changes": {"type": "array", "items": obj({"path": STRING, "before": {}, "after": {}})},
})
