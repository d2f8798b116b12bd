"""The proxy endpoints: authenticate, limit, check, record, forward, respond."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from core.config import ModelConfig
from core.errors import InvalidParameter, ModelNotFound
from gateway.auth import Principal
from gateway.body import parse_object, parse_tags, prompt_chars, read_body, validate
from gateway.cache import canonical_hash
from gateway.cache_plan import features_of, plan_for
from gateway.caching import netra_headers, serve_cached
from gateway.calls import start_row
from gateway.context import CallContext
from gateway.deferred import defer
from gateway.embed_send import send_reply
from gateway.limits import LimitResult
from gateway.providers.base import UpstreamCall
from gateway.responses import BytesResponse, ProxyResponse, SSEResponse
from gateway.routing import Route, plan_route
from gateway.state import GatewayState, get_ctx, get_state
from gateway.tiers import hourly_limit
from gateway.upstream import open_stream
from policies import RoutePolicy, decide

# Model names are short; a longer one is kept this long in the ledger (the rest is a client's noise).
MAX_MODEL_CHARS = 256
NO_PROVIDER = (
    "The model `{}` is not available: no provider is configured on this gateway. Set OPENAI_API_KEY or"
    " ANTHROPIC_API_KEY in the gateway's environment, or list providers and models in netra.yaml (see the README),"
    " then restart the gateway."
)
# The reason itself (which variable is unset) stays in the gateway's start-up log, not in a client's answer.
WITHHELD = (
    "The model `{}` is configured on this gateway but not served: its provider's credential is not set. The gateway's"
    " start-up log says which variable to set."
)


async def authorize(state: GatewayState, request: Request, ctx: CallContext) -> Principal:
    """Authenticate the caller and count the request against its tenant's limit."""
    principal = await state.auth.authenticate(request.headers.get("authorization"))
    ctx.tenant_id, ctx.tenant_name, ctx.key_id = principal.tenant_id, principal.tenant_name, principal.key_id
    limit = hourly_limit(principal.tier)
    if limit is not None:
        result: LimitResult = await state.limiter.hit(principal.tenant_id, limit)
        ctx.headers.extend(result.headers())
        if not result.allowed:
            raise result.error()
    return principal


def resolve_model(state: GatewayState, principal: Principal, name: str, endpoint: str) -> ModelConfig:
    """The configured model the key may use, served by a provider that supports the endpoint."""
    model = state.models.get(name)
    if model is None and principal.may_use(name) and state.config.withheld_reason(name):
        raise ModelNotFound(name, WITHHELD.format(name))
    if not state.models:
        raise ModelNotFound(name, NO_PROVIDER.format(name))
    if model is None or not principal.may_use(name):
        raise ModelNotFound(name)
    if not state.providers[model.provider].supports(endpoint):
        raise InvalidParameter(
            f"The model `{name}` does not support /v1/{endpoint}.", code="invalid_value", param="model"
        )
    return model


def note_requested_model(ctx: CallContext, body: dict[str, Any]) -> None:
    """Record the model the client asked for, as sent, before any check may refuse the call."""
    name = body.get("model")
    if isinstance(name, str):
        ctx.requested_model = name[:MAX_MODEL_CHARS]


def describe(ctx: CallContext, request: Request, endpoint: str, body: dict[str, Any], model: ModelConfig) -> None:
    """Fill the context with what the ledger records about the request (the requested model is already noted)."""
    ctx.served_model = ctx.requested_upstream = model.upstream_name
    ctx.served_name = ctx.requested_name = model.name
    ctx.provider = model.provider
    ctx.stream = body.get("stream") is True
    ctx.prompt_chars = prompt_chars(endpoint, body)
    # The cache's tenant-free canonical hash: logged repeats are exactly what the cache would serve.
    ctx.request_hash = canonical_hash(endpoint, body)
    ctx.tags = parse_tags(request.headers.get("x-netra-tags"))


async def prepare(request: Request, endpoint: str) -> tuple[GatewayState, CallContext, UpstreamCall]:
    """Everything the policy decision needs: auth, limits, body checks, model resolution."""
    state, ctx = get_state(request), get_ctx(request)
    principal = await authorize(state, request, ctx)
    body = parse_object(await read_body(request, state.settings.max_body_bytes))
    note_requested_model(ctx, body)
    validate(endpoint, body)
    model = resolve_model(state, principal, body["model"], endpoint)
    describe(ctx, request, endpoint, body, model)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return state, ctx, UpstreamCall(endpoint, body, model, ctx.stream, ctx.request_id, include_usage)


async def proxy(request: Request, endpoint: str) -> ProxyResponse:
    """Serve one call of an OpenAI endpoint: the policy decision, then the cache or the provider."""
    state, ctx, call = await prepare(request, endpoint)
    features = features_of(ctx, call)
    decision = decide(features, state.policies.snapshot)
    deferred = await defer(state, ctx, call, decision.batch, request.headers)
    if deferred is not None:
        return deferred  # answered 202; its ledger row comes with the batch result
    plan = plan_for(decision.cache, features, ctx, call, request.headers)
    route = route_for(state, ctx, call, decision.route)
    ctx.cache_outcome = "bypass"
    state.ledger.begin(start_row(ctx))
    response = None if plan is None else await serve_cached(state, ctx, call, plan, route)
    if response is None:
        response = await forward(state, ctx, call, route)
    m = state.metrics
    m.child(m.cache_lookups, endpoint, ctx.cache_outcome).inc()
    return response


def route_for(state: GatewayState, ctx: CallContext, call: UpstreamCall, policy: RoutePolicy | None) -> Route:
    """The models the call tries, in order (the route policy's split, then fallbacks)."""
    route = plan_route(call.model.name, policy, ctx.request_id, state.deployments.fallbacks)
    if policy is not None:
        ctx.route_policy = (policy.id or "", policy.version)
    return route


async def forward(state: GatewayState, ctx: CallContext, call: UpstreamCall, route: Route) -> ProxyResponse:
    """The provider's answer, relayed as it is (no cache policy, or the cache unavailable: `bypass`)."""
    if call.stream:
        stream = await open_stream(state, ctx, call, route)
        return SSEResponse(stream, ctx, netra_headers(ctx, "bypass"))
    reply = await send_reply(state, ctx, call, route)  # embeddings may be micro-batched
    ctx.usage, ctx.completion_chars = reply.usage, reply.completion_chars
    return BytesResponse(reply.body, netra_headers(ctx, "bypass"), reply.status)


async def chat_completions(request: Request) -> ProxyResponse:
    """POST /v1/chat/completions."""
    return await proxy(request, "chat/completions")


async def completions(request: Request) -> ProxyResponse:
    """POST /v1/completions."""
    return await proxy(request, "completions")


async def embeddings(request: Request) -> ProxyResponse:
    """POST /v1/embeddings."""
    return await proxy(request, "embeddings")


async def responses(request: Request) -> ProxyResponse:
    """POST /v1/responses."""
    return await proxy(request, "responses")
