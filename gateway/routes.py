"""The gateway's paths and their handlers; no logic here."""

from __future__ import annotations

from starlette.routing import Route

from gateway import deferred, handlers, info
from gateway.batch_api.routes import batch_routes


def routes() -> list[Route]:
    """Every route the gateway serves."""
    return [
        Route("/v1/chat/completions", handlers.chat_completions, methods=["POST"]),
        Route("/v1/completions", handlers.completions, methods=["POST"]),
        Route("/v1/embeddings", handlers.embeddings, methods=["POST"]),
        Route("/v1/responses", handlers.responses, methods=["POST"]),
        Route("/v1/deferred/{deferred_id}", deferred.get_deferred, methods=["GET"]),
        Route("/v1/models", info.list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", info.get_model, methods=["GET"]),
        Route("/health", info.health, methods=["GET"]),
        Route("/health/ready", info.ready, methods=["GET"]),
        Route("/metrics", info.metrics, methods=["GET"]),
        *batch_routes(),
    ]
