"""The admin app's routes; who may call each is in admin/permissions.py."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from admin import api, auth_api, dashboard, oidc_api, openapi, pages, providers_api, users_api
from admin.pages import STATIC_DIR


def routes() -> list[BaseRoute]:
    """Every route of the admin app."""
    return [
        Route("/health", pages.health, methods=["GET"]),
        Route("/login", pages.login_page, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/api/auth/login", auth_api.login, methods=["POST"]),
        Route("/api/auth/refresh", auth_api.refresh, methods=["POST"]),
        Route("/api/auth/logout", auth_api.logout, methods=["POST"]),
        Route("/api/me", auth_api.me, methods=["GET"]),
        Route("/api/users", users_api.users_list, methods=["GET"]),
        Route("/api/users", users_api.users_create, methods=["POST"]),
        Route("/api/users/{user_id}/disable", users_api.users_disable, methods=["POST"]),
        Route("/api/audit", users_api.audit_list, methods=["GET"]),
        *providers_api.ROUTES,
        *oidc_api.ROUTES,
        Route(api.OPENAPI_PATH, openapi.openapi_document, methods=["GET"]),
        *api.routes(),
        *dashboard.ROUTES,
    ]
