"""Single sign-on routes: whether it is on, the start of a sign-in at the issuer, and the callback completing it
with the same session a password login gives (refresh cookie and CSRF cookie; the page gets its access token by
refreshing, so no token ever travels in a URL)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from admin.cookies import set_session_cookies
from admin.errors import Forbidden, render
from admin.oidc_flow import FLOW_COOKIE, FLOW_PATH, FLOW_TTL, Flow, FlowInvalid, authorize_url, flow_key, seal, unseal
from admin.oidc_idtoken import Identity, IdTokenInvalid, verify_id_token
from admin.oidc_provider import CodeRefused, Discovery, IssuerUnavailable, OidcProvider
from admin.principal import client_address
from admin.state import AdminState, get_state
from core import refresh_tokens
from core.errors import AuthenticationFailed, InvalidParameter, NetraError, NotFound, UpstreamFailed
from core.oidc_users import SignInRefused, sso_sign_in
from core.user_store import InvalidUser, normalise_email

STATUS_PATH = "/api/auth/oidc"
LOGIN_PATH = "/api/auth/oidc/login"
CALLBACK_PATH = "/api/auth/oidc/callback"
AFTER_SIGN_IN = "/login"
# The table's public rule, spelled out: importing it from admin.permissions would import this module in a circle.
PUBLIC = "public"


def _provider(request: Request) -> OidcProvider:
    provider = get_state(request).oidc
    if provider is None:
        raise NotFound("Single sign-on is not configured.", code="sso_not_configured")
    return provider


async def _discovery(provider: OidcProvider) -> Discovery:
    try:
        return await provider.discovery()
    except IssuerUnavailable as exc:
        raise UpstreamFailed(f"The identity provider is unavailable: {exc}.", code="sso_unavailable") from exc


async def sso_status(request: Request) -> Response:
    """Whether the login page offers "Sign in with SSO"."""
    return JSONResponse({"enabled": get_state(request).oidc is not None, "login_url": LOGIN_PATH})


async def sso_login(request: Request) -> Response:
    """Send the browser to the issuer, with this sign-in's state, nonce and PKCE verifier in a signed cookie."""
    state, provider = get_state(request), _provider(request)
    discovery = await _discovery(provider)
    flow = Flow.new()
    response = RedirectResponse(authorize_url(discovery.authorization_endpoint, provider.config, flow), 302)
    # Lax, not Strict: the issuer's redirect back to the callback is a cross-site navigation, which Lax allows.
    response.set_cookie(FLOW_COOKIE, seal(flow, flow_key(state.signing_key), state.clock()),
                        max_age=int(FLOW_TTL.total_seconds()), path=FLOW_PATH, httponly=True, samesite="lax",
                        secure=provider.config.redirect_uri.startswith("https://"))
    return response


async def sso_callback(request: Request) -> Response:
    """Complete a sign-in: on success, the session's cookies and a redirect to the page; the flow cookie is spent."""
    provider = _provider(request)
    try:
        response = await _complete(request, get_state(request), provider)
    except NetraError as exc:
        response = render(exc)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="lax",
                           secure=provider.config.redirect_uri.startswith("https://"))
    return response


def _flow(request: Request, state: AdminState) -> Flow:
    try:
        return unseal(request.cookies.get(FLOW_COOKIE), request.query_params.get("state"),
                      flow_key(state.signing_key), state.clock())
    except FlowInvalid as exc:
        raise InvalidParameter(f"Single sign-on failed: {exc}; start again.", code="sso_state_invalid",
                               param="state") from exc


async def _identity(request: Request, state: AdminState, provider: OidcProvider, flow: Flow) -> Identity:
    params = request.query_params
    if "error" in params:
        raise AuthenticationFailed(f"The identity provider did not sign you in ({params['error'][:64]}).",
                                   code="sso_denied")
    if not params.get("code"):
        raise InvalidParameter("The callback carries no code.", code="missing_required_parameter", param="code")
    try:
        token = await provider.exchange(params["code"], flow.verifier)
        return await verify_id_token(token, provider, flow.nonce, state.clock())
    except CodeRefused as exc:
        raise AuthenticationFailed(f"The identity provider refused the sign-in ({exc.error}); start again.",
                                   code="sso_code_refused") from exc
    except IdTokenInvalid as exc:
        raise AuthenticationFailed(f"The identity provider's ID token was refused: {exc}.",
                                   code="invalid_id_token") from exc
    except IssuerUnavailable as exc:
        raise UpstreamFailed(f"The identity provider is unavailable: {exc}.", code="sso_unavailable") from exc


def _email_and_role(provider: OidcProvider, identity: Identity) -> tuple[str, str]:
    if identity.email_verified is False:
        raise Forbidden("The identity provider has not verified your email address.", code="sso_email_unverified")
    try:
        email = normalise_email(identity.email or "")
    except InvalidUser as exc:
        raise Forbidden("The identity provider sent no usable email address (is the email scope requested?).",
                        code="sso_no_email") from exc
    role = provider.config.role_map.role_for(email, identity.claims)
    if role is None:
        raise Forbidden(f"{email} signed in at the identity provider, but no rule of the role map gives it a role "
                        "in Netra; ask an admin.", code="sso_no_role")
    return email, role


async def _complete(request: Request, state: AdminState, provider: OidcProvider) -> Response:
    flow = _flow(request, state)
    identity = await _identity(request, state, provider, flow)
    email, role = _email_and_role(provider, identity)
    async with state.sessions() as session:
        try:
            user = await sso_sign_in(session, email, provider.config.issuer, identity.subject, role,
                                     address=client_address(request))
        except SignInRefused as exc:
            raise Forbidden(str(exc), code=exc.code) from exc
        refresh = await refresh_tokens.issue(session, user.id, state.clock(), state.refresh_ttl)
    response = RedirectResponse(AFTER_SIGN_IN, 303)
    set_session_cookies(request, response, state, refresh)
    return response


ROUTES: list[BaseRoute] = [
    Route(STATUS_PATH, sso_status, methods=["GET"]),
    Route(LOGIN_PATH, sso_login, methods=["GET"]),
    Route(CALLBACK_PATH, sso_callback, methods=["GET"]),
]
PERMISSIONS: dict[tuple[str, str], str] = {("GET", route): PUBLIC for route in (STATUS_PATH, LOGIN_PATH, CALLBACK_PATH)}
