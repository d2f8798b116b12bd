"""Who may call what: one table of (method, route path) → the weakest role admitted, enforced by one middleware.

Deny by default: a route missing from the table refuses everyone (401 anonymous, 403 signed in). `public` routes
need nothing; `refresh_cookie` routes authenticate with the refresh cookie and must pass the CSRF check. Later
slices add their routes here, next to the routes themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from admin import api, dashboard, oidc_api, providers_api
from admin.cookies import REFRESH_COOKIE as REFRESH_COOKIE  # where auth_api and older callers found it
from admin.errors import Forbidden, unauthenticated
from admin.pages_auth import refusal
from admin.principal import Principal, authenticate
from admin.security import SAFE_METHODS, check_origin
from admin.session import VIA_COOKIE, checked_write
from core.errors import NetraError
from core.users import ROLES, role_rank

PUBLIC = "public"
REFRESH_COOKIE_RULE = "refresh_cookie"

PERMISSIONS: Mapping[tuple[str, str], str] = MappingProxyType({
    ("GET", "/health"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/refresh"): REFRESH_COOKIE_RULE,
    ("POST", "/api/auth/logout"): REFRESH_COOKIE_RULE,
    ("GET", "/api/me"): "viewer",
    ("GET", "/api/users"): "admin",
    ("POST", "/api/users"): "admin",
    ("POST", "/api/users/{user_id}/disable"): "admin",
    ("GET", "/api/audit"): "admin",
    **providers_api.PERMISSIONS,
    **oidc_api.PERMISSIONS,
    **api.PERMISSIONS,
    **dashboard.PERMISSIONS,
})


def matched_route(routes: list[BaseRoute], scope: Scope) -> tuple[str, bool] | None:
    """The path template of the route this request hits and whether its method matches too; None for no route."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        path = str(getattr(route, "path", ""))
        if match is Match.FULL:
            return path, True
        if match is Match.PARTIAL and partial is None:
            partial = path
    return None if partial is None else (partial, False)


class PermissionGuard:
    """ASGI middleware: authenticates and authorises each request against the table before routing it."""

    def __init__(self, app: ASGIApp, table: Mapping[tuple[str, str], str] = PERMISSIONS) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse with the envelope, or pass the request on with its principal in the scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._check(Request(scope))
            if scope.get(VIA_COOKIE) and scope["method"] not in SAFE_METHODS:
                receive = await checked_write(scope, receive)
        except NetraError as exc:
            await refusal(scope, exc)(scope, receive, send)
            return
        if principal is not None:
            scope["netra.principal"] = principal
        await self.app(scope, receive, send)

    async def _check(self, request: Request) -> Principal | None:
        found = matched_route(request.app.router.routes, request.scope)
        if found is None:
            return None  # the router answers 404
        path, full = found
        method = "GET" if request.method == "HEAD" else request.method
        if method not in SAFE_METHODS:
            check_origin(request)
        rule = self.table.get((method, path))
        if rule == PUBLIC or (not full and PUBLIC in self._rules(path)):
            return None
        if rule == REFRESH_COOKIE_RULE:
            if not request.cookies.get(REFRESH_COOKIE):
                raise unauthenticated("Not signed in.", "missing_token")
            request.scope[VIA_COOKIE] = True  # checked (header or form field) before the handler runs
            return None
        principal = await authenticate(request)
        if full:
            self._authorise(principal, rule)
        return principal  # a wrong method on a known path: the router answers 405 to a signed-in caller

    def _rules(self, path: str) -> set[str]:
        return {rule for (_, p), rule in self.table.items() if p == path}

    @staticmethod
    def _authorise(principal: Principal, rule: str | None) -> None:
        if rule not in ROLES:  # missing, or a typo in the table: nobody, rather than everybody
            raise Forbidden("This route is not open to any role.", code="route_not_permitted")
        if role_rank(principal.role) < role_rank(rule):
            raise Forbidden(f"This needs the {rule} role or above.")
