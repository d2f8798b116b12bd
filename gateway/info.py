"""Read-only endpoints: the models a key may use, health, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from core.config import ModelConfig
from core.errors import ModelNotFound
from gateway.auth import Principal
from gateway.state import GatewayState, get_ctx, get_state

_READY_TIMEOUT = 2.0


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def model_object(state: GatewayState, model: ModelConfig) -> dict[str, Any]:
    """A model the way OpenAI lists it."""
    return {"id": model.name, "object": "model", "created": state.started_at, "owned_by": model.provider}


async def _authenticate(request: Request) -> tuple[GatewayState, Principal]:
    """The caller, without counting the request against its tenant's hourly limit: a listing is not a billable call."""
    state, ctx = get_state(request), get_ctx(request)
    principal = await state.auth.authenticate(request.headers.get("authorization"))
    ctx.tenant_id, ctx.tenant_name, ctx.key_id = principal.tenant_id, principal.tenant_name, principal.key_id
    return state, principal


async def list_models(request: Request) -> Response:
    """GET /v1/models: the configured models this key may use."""
    state, principal = await _authenticate(request)
    data = [model_object(state, m) for m in state.models.values() if principal.may_use(m.name)]
    return _json({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    """GET /v1/models/{id}."""
    state, principal = await _authenticate(request)
    name = request.path_params["model_id"]
    model = state.models.get(name)
    if model is None or not principal.may_use(name):
        raise ModelNotFound(name)
    return _json(model_object(state, model))


async def health(request: Request) -> Response:
    """GET /health: the process is up."""
    return _json({"status": "ok"})


class Finding(Exception):
    """What a probe found, reported as its message."""


async def _check_database(state: GatewayState) -> None:
    async with state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_redis(state: GatewayState) -> None:
    # While the limiter skips Redis (an outage it noticed) the answer is known: no ping to wait on.
    reason = state.limiter.degraded
    if reason is not None:
        raise Finding(f"degraded: {reason}")
    if state.redis is not None:
        try:
            await state.redis.ping()
        except (RedisError, OSError) as exc:
            raise Finding(f"degraded: redis unreachable ({type(exc).__name__})") from exc


async def _check_clickhouse(state: GatewayState) -> None:
    if state.store is not None and not await state.store.responsive():
        raise ConnectionError("clickhouse did not answer")
    if not state.ledger.store_ready:
        raise ConnectionError("the ledger process has not opened clickhouse")


async def _check_ledger(state: GatewayState) -> None:
    if not state.ledger.healthy:
        raise OSError("the ledger spill cannot be written")


async def _check_providers(state: GatewayState) -> None:
    if not state.models:
        raise Finding("none configured: set OPENAI_API_KEY or ANTHROPIC_API_KEY, or write netra.yaml")


Check = Callable[[GatewayState], Awaitable[None]]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("database", _check_database), ("redis", _check_redis), ("clickhouse", _check_clickhouse),
    ("ledger", _check_ledger), ("providers", _check_providers),
)
# Checks whose failure the gateway serves through (DESIGN.md §6): reported as degraded, readiness kept.
OPTIONAL = frozenset({"redis"})


async def _probe(name: str, check: Check, state: GatewayState) -> tuple[str, str]:
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            await check(state)
    except Finding as finding:
        return name, str(finding)
    except Exception as exc:  # a failed probe is a finding, whatever the cause
        return name, f"{'degraded' if name in OPTIONAL else 'error'}: {type(exc).__name__}"
    return name, "ok"


async def ready(request: Request) -> Response:
    """GET /health/ready: 503 naming what fails; 200 with status "degraded" when only an optional store is away."""
    state = get_state(request)
    results = dict(await asyncio.gather(*(_probe(n, c, state) for n, c in CHECKS)))
    failing = [n for n, v in results.items() if v != "ok" and n not in OPTIONAL]
    status = "unavailable" if failing else "ok" if all(v == "ok" for v in results.values()) else "degraded"
    return _json({"status": status, "checks": results}, 503 if failing else 200)


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text format."""
    return Response(generate_latest(get_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
