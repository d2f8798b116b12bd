"""The pages and the health check: static documents, no user data rendered on the server."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def health(request: Request) -> Response:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def login_page(request: Request) -> Response:
    """The sign-in page; its script (no inline code, the CSP forbids it) calls the same /api/auth/login."""
    return FileResponse(STATIC_DIR / "login.html", media_type="text/html; charset=utf-8")
