"""OpenAPI operations of the /api routes not built from an endpoint table: sign-in (auth_api.py, oidc_api.py),
users and the audit log (users_api.py), provider credentials (providers_api.py), and the document itself."""

from __future__ import annotations

from admin.api_schemas import BOOLEAN, INTEGER, STRING, obj
from admin.apispec import JSON, Operation, Param, Schema, ok, path_param, ref

LIST_OF_USERS = obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("User")}})
LIST_OF_ENTRIES = obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("AuditEntry")}})
TOKEN = obj({"access_token": STRING, "token_type": {"const": "bearer"}, "expires_in": INTEGER})
NO_CONTENT: dict[int, dict[str, Schema]] = {204: {}}
PROVIDER = obj({"name": STRING, "kind": STRING}, additionalProperties=True)
LIST_OF_PROVIDERS = obj({"object": {"const": "list"}, "data": {"type": "array", "items": PROVIDER}})
HOSTS = obj({"object": {"const": "list"}, "data": {"type": "array", "items": {"type": "object"}}})
NAME = path_param("name", "the provider's name in netra.yaml")
REDIRECT: dict[int, dict[str, Schema]] = {302: {}}
CSRF = Param("x-csrf-token", "header", STRING, "the netra_csrf cookie's value (double submit)", required=True)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/api/openapi.json"): Operation(
        "This document", "meta", responses={200: {JSON: {"type": "object"}}}),
    ("POST", "/api/auth/login"): Operation(
        "Sign in: an access token, and the refresh and CSRF cookies", "auth",
        body=obj({"email": STRING, "password": STRING}), responses=ok(TOKEN)),
    ("POST", "/api/auth/refresh"): Operation(
        "A new access token for the refresh cookie (rotated)", "auth", (CSRF,), responses=ok(TOKEN)),
    ("POST", "/api/auth/logout"): Operation(
        "Sign out: the refresh cookie's family revoked", "auth", (CSRF,), responses=NO_CONTENT),
    ("GET", "/api/me"): Operation(
        "The signed-in user", "auth", responses=ok(obj({"id": STRING, "email": STRING, "role": STRING}))),
    ("GET", "/api/users"): Operation("List users", "users", responses=ok(LIST_OF_USERS)),
    ("POST", "/api/users"): Operation(
        "Create a user", "users", body=obj({"email": STRING, "password": STRING,
                                            "role": {"enum": ["viewer", "finance", "admin"]}}),
        responses=ok(ref("User"), 201)),
    ("POST", "/api/users/{user_id}/disable"): Operation(
        "Disable a user", "users", (path_param("user_id", "the user's id"),), responses=ok(ref("User"))),
    ("GET", "/api/audit"): Operation(
        "The audit log, newest first", "users",
        (Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "entries"),
         Param("before", "query", {"type": "integer", "minimum": 1}, "only entries older than this id")),
        responses=ok(LIST_OF_ENTRIES)),
    ("GET", "/api/auth/oidc"): Operation(
        "Whether single sign-on is offered", "auth", responses=ok(obj({"enabled": BOOLEAN, "login_url": STRING}))),
    ("GET", "/api/auth/oidc/login"): Operation("Start a single sign-on (a redirect to the issuer)", "auth",
                                               responses=REDIRECT),
    ("GET", "/api/auth/oidc/callback"): Operation(
        "Complete a single sign-on (the issuer redirects here)", "auth",
        (Param("code", "query", STRING, "the authorization code"), Param("state", "query", STRING, "the flow state")),
        responses=REDIRECT),
    ("GET", "/api/providers"): Operation("List providers (key's last four characters only)", "providers",
                                         responses=ok(LIST_OF_PROVIDERS)),
    ("PUT", "/api/providers/{name}/api_key"): Operation(
        "Set or rotate a provider's key (never shown again)", "providers", (NAME,), body=obj({"api_key": STRING}),
        responses=ok(PROVIDER)),
    ("DELETE", "/api/providers/{name}/api_key"): Operation(
        "Use the file's key again", "providers", (NAME,), responses=ok(PROVIDER)),
    ("PUT", "/api/providers/{name}/base_url"): Operation(
        "Set a provider's base URL (internal addresses refused)", "providers", (NAME,),
        body=obj({"base_url": STRING}), responses=ok(PROVIDER)),
    ("DELETE", "/api/providers/{name}/base_url"): Operation(
        "Use the file's base URL again", "providers", (NAME,), responses=ok(PROVIDER)),
    ("GET", "/api/provider-allowlist"): Operation("Hosts allowed past the address checks", "providers",
                                                  responses=ok(HOSTS)),
    ("POST", "/api/provider-allowlist"): Operation("Allowlist a host", "providers", body=obj({"host": STRING}),
                                                   responses=ok({"type": "object"}, 201)),
    ("DELETE", "/api/provider-allowlist/{host}"): Operation(
        "Take a host off the allowlist", "providers", (path_param("host", "the host"),), responses=NO_CONTENT),
}
