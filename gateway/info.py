"""Read-only endpoints: the models a key may use, health, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from core.config import ModelConfig
from core.errors import ModelNotFound
from gateway.handlers import authorize
from gateway.state import GatewayState, get_ctx, get_state

_READY_TIMEOUT = 2.0


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def model_object(state: GatewayState, model: ModelConfig) -> dict[str, Any]:
    """A model the way OpenAI lists it."""
    return {"id": model.name, "object": "model", "created": state.started_at, "owned_by": model.provider}


async def list_models(request: Request) -> Response:
    """GET /v1/models: the configured models this key may use."""
    state = get_state(request)
    principal = await authorize(state, request, get_ctx(request))
    data = [model_object(state, m) for m in state.models.values() if principal.may_use(m.name)]
    return _json({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    """GET /v1/models/{id}."""
    state = get_state(request)
    principal = await authorize(state, request, get_ctx(request))
    name = request.path_params["model_id"]
    model = state.models.get(name)
    if model is None or not principal.may_use(name):
        raise ModelNotFound(name)
    return _json(model_object(state, model))


async def health(request: Request) -> Response:
    """GET /health: the process is up."""
    return _json({"status": "ok"})


async def _check_database(state: GatewayState) -> None:
    async with state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_redis(state: GatewayState) -> None:
    if state.redis is not None:
        await state.redis.ping()


async def _check_clickhouse(state: GatewayState) -> None:
    if state.store is not None and not await state.store.run(state.store.ping):
        raise ConnectionError("clickhouse did not answer")
    if not state.ledger.store_ready:
        raise ConnectionError("the ledger's ingest process has not opened clickhouse")


async def _check_ledger(state: GatewayState) -> None:
    if not state.ledger.healthy:
        raise OSError("the ledger spill cannot be written")


async def _probe(name: str, check: Any, state: GatewayState) -> tuple[str, str]:
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            await check(state)
    except Exception as exc:  # a failed probe is a finding, whatever the cause
        return name, f"error: {type(exc).__name__}"
    return name, "ok"


async def ready(request: Request) -> Response:
    """GET /health/ready: every configured store answers (503 otherwise, saying which does not)."""
    state = get_state(request)
    checks = {"database": _check_database, "redis": _check_redis, "clickhouse": _check_clickhouse,
              "ledger": _check_ledger}
    results = dict(await asyncio.gather(*(_probe(n, c, state) for n, c in checks.items())))
    ok = all(v == "ok" for v in results.values())
    return _json({"status": "ok" if ok else "unavailable", "checks": results}, 200 if ok else 503)


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text format."""
    return Response(generate_latest(get_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
