"""Managing users (admin only) and reading the audit log (admin only, read-only)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin.body import read_object, string_field
from admin.errors import Conflict
from admin.principal import client_address, principal_of
from admin.state import get_state
from core import audit
from core.errors import InvalidParameter, NotFound
from core.passwords import PasswordRejected, check_new_password, hash_password
from core.user_store import InvalidUser, UserExists, check_role, create_user, disable_user, list_users, normalise_email
from core.users import User

MAX_AUDIT_PAGE = 1000


async def users_list(request: Request) -> Response:
    """Every user, oldest first."""
    async with get_state(request).sessions() as session:
        users = await list_users(session)
    return JSONResponse({"object": "list", "data": [u.public() for u in users]})


def _checked(email: str, password: str, role: str, min_length: int) -> tuple[str, str]:
    try:
        email = normalise_email(email)
    except InvalidUser as exc:
        raise InvalidParameter(str(exc), code="invalid_value", param="email") from exc
    try:
        check_role(role)
        check_new_password(password, min_length)
    except InvalidUser as exc:
        raise InvalidParameter(str(exc), code="invalid_value", param="role") from exc
    except PasswordRejected as exc:
        raise InvalidParameter(str(exc), code="invalid_value", param="password") from exc
    return email, role


async def users_create(request: Request) -> Response:
    """Create a user from {"email", "password", "role"}; 409 when the email is taken."""
    state = get_state(request)
    body = await read_object(request)
    email, password, role = (string_field(body, name) for name in ("email", "password", "role"))
    email, role = _checked(email, password, role, state.settings.admin_password_min_length)
    password_hash = await asyncio.to_thread(hash_password, password, state.hash_cost)
    async with state.sessions() as session:
        try:
            user = await create_user(session, email, password_hash, role, actor=principal_of(request).email,
                                     address=client_address(request))
        except UserExists as exc:
            raise Conflict(str(exc), code="user_exists", param="email") from exc
    return JSONResponse(user.public(), status_code=201)


async def users_disable(request: Request) -> Response:
    """Disable a user: its refresh tokens are revoked and its access tokens stop working at once."""
    principal = principal_of(request)
    user_id = request.path_params["user_id"]
    if user_id == principal.user_id:
        raise InvalidParameter("You cannot disable your own account.", code="cannot_disable_self", param="user_id")
    async with get_state(request).sessions() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.", code="user_not_found", param="user_id")
        user = await disable_user(session, user, actor=principal.email, address=client_address(request))
    return JSONResponse(user.public())


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidParameter(f"'{name}' must be a whole number from {low} to {high}.", param=name)
    return int(raw)


async def audit_list(request: Request) -> Response:
    """The newest entries first; `limit` (default 100) and `before` (an entry id) page back through them."""
    limit = _int_param(request, "limit", 100, 1, MAX_AUDIT_PAGE) or 100
    before = _int_param(request, "before", None, 1, 2**63 - 1)
    async with get_state(request).sessions() as session:
        rows = await audit.entries(session, limit=limit, before_id=before)
    return JSONResponse({"object": "list", "data": [row.public() for row in rows]})
