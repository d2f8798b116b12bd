"""The floor: a minimal Starlette + aiohttp proxy with no auth, limits, logging or ledger.

Run as `python -m bench.bare_proxy PORT UPSTREAM_PORT`; the benchmark compares Netra's CPU per request with it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build(upstream: str) -> Starlette:
    """A proxy forwarding POST /v1/chat/completions to `upstream` with one pooled session."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as session:
            yield {"session": session}

    async def chat(request: Request) -> Response:
        session: aiohttp.ClientSession = request.state.session
        headers = {"authorization": "Bearer sk-fake-upstream-key", "content-type": "application/json"}
        async with session.post(f"{upstream}/v1/chat/completions", data=await request.body(), headers=headers) as r:
            return Response(await r.read(), status_code=r.status, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(build(f"http://127.0.0.1:{upstream_port}"), port=port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
