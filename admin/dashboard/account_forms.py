"""The Tenants-and-keys and Provider-credentials pages' forms: the API's services (same rules, same audit entries),
posted as plain HTML forms with the CSRF token. A refusal is shown on a page with the service's message and status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin.api_params import actor_of
from admin.dashboard.web import page
from admin.services import credentials
from admin.services import tenants as tenant_service
from admin.services.changes import Actor
from admin.state import AdminState, get_state
from core.errors import NetraError, NotFound

Form = Callable[[AdminState, Actor, str, FormData], Awaitable[object]]


def _field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


async def _tier(state: AdminState, actor: Actor, tenant_id: str, form: FormData) -> object:
    return await tenant_service.set_tier(state.sessions, actor, tenant_id, _field(form, "tier"))


async def _suspend(state: AdminState, actor: Actor, tenant_id: str, form: FormData) -> object:
    return await tenant_service.set_status(state.sessions, actor, tenant_id, "suspended")


async def _activate(state: AdminState, actor: Actor, tenant_id: str, form: FormData) -> object:
    return await tenant_service.set_status(state.sessions, actor, tenant_id, "active")


async def _revoke(state: AdminState, actor: Actor, key_id: str, form: FormData) -> object:
    return await tenant_service.revoke_key(state.sessions, actor, key_id)


async def _set_key(state: AdminState, actor: Actor, name: str, form: FormData) -> object:
    return await credentials.set_key(state, actor, name, _field(form, "api_key"))


async def _clear_key(state: AdminState, actor: Actor, name: str, form: FormData) -> object:
    return await credentials.clear_key(state, actor, name)


async def _set_base_url(state: AdminState, actor: Actor, name: str, form: FormData) -> object:
    return await credentials.set_base_url(state, actor, name, _field(form, "base_url").strip())


async def _clear_base_url(state: AdminState, actor: Actor, name: str, form: FormData) -> object:
    return await credentials.clear_base_url(state, actor, name)


TENANT_FORMS: dict[str, Form] = {"tier": _tier, "suspend": _suspend, "activate": _activate}
KEY_FORMS: dict[str, Form] = {"revoke": _revoke}
CREDENTIAL_FORMS: dict[str, Form] = {
    "set-key": _set_key, "clear-key": _clear_key, "set-base-url": _set_base_url, "clear-base-url": _clear_base_url,
}


async def _refusing(request: Request, title: str, make: Callable[[], Awaitable[Response]]) -> Response:
    """The response `make` gives, or the refusal it raised shown on a page with its message and status."""
    try:
        return await make()
    except NetraError as exc:
        return page(request, "refused.html", status=exc.status, title=title, message=exc.message)


async def _apply(request: Request, forms: dict[str, Form], target: str, back: str, title: str) -> Response:
    """Run the form named by the path's action on `target`, then go back to `back` (303) or show the refusal."""
    form = forms.get(request.path_params["action"])
    if form is None:
        raise NotFound("Not found.")

    async def run() -> Response:
        await form(get_state(request), actor_of(request), target, await request.form())
        return RedirectResponse(back, status_code=303)

    return await _refusing(request, title, run)


async def tenant_change(request: Request) -> Response:
    """Change a tenant's tier, suspend it or activate it."""
    return await _apply(request, TENANT_FORMS, request.path_params["tenant_id"], "/tenants", "Tenants and keys")


async def key_change(request: Request) -> Response:
    """Revoke a key."""
    return await _apply(request, KEY_FORMS, request.path_params["key_id"], "/tenants", "Tenants and keys")


async def credential_change(request: Request) -> Response:
    """Set or clear a provider's key or base URL."""
    return await _apply(request, CREDENTIAL_FORMS, request.path_params["name"], "/credentials", "Provider credentials")


async def tenant_create(request: Request) -> Response:
    """Create a tenant from the form's name and tier."""

    async def run() -> Response:
        form = await request.form()
        await tenant_service.create_tenant(get_state(request).sessions, actor_of(request), _field(form, "name"),
                                           _field(form, "tier") or "free")
        return RedirectResponse("/tenants", status_code=303)

    return await _refusing(request, "Tenants and keys", run)


async def key_create(request: Request) -> Response:
    """Create a key for a tenant and show it, this once (the page is never cached)."""

    async def run() -> Response:
        form = await request.form()
        models = [m for m in _field(form, "models").split(",") if m.strip()]
        expiry = tenant_service.check_expiry(_field(form, "expires_in").strip() or None)
        key, plaintext = await tenant_service.create_key(get_state(request).sessions, actor_of(request),
                                                         request.path_params["tenant_id"], models, expiry)
        return page(request, "key_created.html", status=201, title="New key", key=key, plaintext=plaintext)

    return await _refusing(request, "Tenants and keys", run)
