"""OpenAPI operations of the routes the admin app's foundation serves (sign-in, users, the audit log) and of
the document itself; their handlers live in auth_api.py, users_api.py and openapi.py."""

from __future__ import annotations

from admin.api_schemas import INTEGER, STRING, obj
from admin.apispec import JSON, Operation, Param, Schema, ok, path_param, ref

LIST_OF_USERS = obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("User")}})
LIST_OF_ENTRIES = obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("AuditEntry")}})
TOKEN = obj({"access_token": STRING, "token_type": {"const": "bearer"}, "expires_in": INTEGER})
NO_CONTENT: dict[int, dict[str, Schema]] = {204: {}}
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
}
