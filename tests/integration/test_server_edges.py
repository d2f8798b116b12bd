"""The gateway served exactly as `netra run` serves it (gateway/server.py, uvloop), met by odd and hostile clients:
trailing slashes, paths without /v1, oversized headers, stalled headers and bodies, idle and surplus connections."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from core.settings import Settings
from gateway.app import create_app
from gateway.server import GatewayServer, server_config
from tests.fake_upstream import FakeUpstream
from tests.integration.harness import MESSAGES, gateway_settings, make_tenants
from tests.unit.helpers import assert_envelope

STALL = 0.5  # the client timeouts the tests set, in seconds
PATIENCE = 15.0  # the most any test waits for the server to act on a timeout (a generous bound, not a measure)
CAP = 6


@contextmanager
def served(settings: Settings, env: dict[str, str]) -> Iterator[str]:
    """The app under uvicorn in a thread of its own, configured by gateway/server.py; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = GatewayServer(server_config(create_app(settings, env), settings, port=port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            thread.join(0.02)
        assert server.started, "the gateway did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@asynccontextmanager
async def gateway(settings: Settings, tmp_path: Path, fake: FakeUpstream, **limits: Any) -> AsyncIterator[Edge]:
    configured = gateway_settings(settings, tmp_path, fake, **{
        "client_body_timeout": STALL, "keep_alive_timeout": STALL, "max_connections": CAP,
        "max_header_bytes": 8 * 1024, **limits,
    })
    keys, _ = await make_tenants(configured)
    with served(configured, {"FAKE_OPENAI_KEY": fake.api_key}) as url:
        yield Edge(url, keys["acme"])


class Edge:
    """A served gateway: its address and a key that may call it."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.port = int(url.rsplit(":", 1)[1])

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    def chat_head(self, length: int) -> bytes:
        return (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {self.key}\r\n"
                f"content-type: application/json\r\ncontent-length: {length}\r\n\r\n").encode()


@pytest.fixture
async def edge(settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream) -> AsyncIterator[Edge]:
    async with gateway(settings, tmp_path, fake_upstream) as served_gateway:
        yield served_gateway


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (failing if it never does)."""
    data = b""
    async with asyncio.timeout(PATIENCE):
        while chunk := await reader.read(65536):
            data += chunk
    return data


def parse(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of one raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict((name.lower(), value.strip()) for name, value in (line.split(":", 1) for line in lines))
    return int(status_line.split()[1]), headers, orjson.loads(body) if body else None


async def closed_by_server(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(OSError):
        await writer.wait_closed()


# --- paths ------------------------------------------------------------------------------------------------------------


async def test_a_trailing_slash_is_served_like_the_path_without_it(edge: Edge) -> None:
    auth = {"authorization": f"Bearer {edge.key}"}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as http:
        plain = await http.post("/v1/chat/completions", json=body, headers=auth)
        slashed = await http.post("/v1/chat/completions/", json=body, headers=auth)
        models = await http.get("/v1/models/", headers=auth)
        health = await http.get("/health/")
    assert slashed.status_code == plain.status_code == 200
    assert slashed.json()["choices"] == plain.json()["choices"]
    assert models.status_code == 200 and {m["id"] for m in models.json()["data"]} >= {"gpt-4o-mini"}
    assert health.status_code == 200


async def test_a_trailing_slash_never_redirects_to_the_clients_host(edge: Edge) -> None:
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as http:
        for path in ("/v1/models/", "/health/", "/v1/nothing-here/"):
            response = await http.get(path, headers={"host": "evil.example"})
            assert "location" not in response.headers, path
            assert response.status_code < 300 or response.status_code >= 400, path
            assert b"evil.example" not in response.content


async def test_a_base_url_without_v1_is_told_to_add_it(edge: Edge) -> None:
    auth = {"authorization": f"Bearer {edge.key}"}
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as http:
        chat = await http.post("/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}, headers=auth)
        models = await http.get("/models", headers=auth)
        embeddings = await http.post("/embeddings/", json={"model": "m", "input": "x"}, headers=auth)
        nowhere = await http.get("/nowhere", headers=auth)
        wrong_method = await http.get("/v1/chat/completions", headers=auth)
    for response in (chat, models, embeddings):
        assert response.status_code == 404
        error = assert_envelope(response.json(), type="invalid_request_error", code="not_found")
        assert f"set the base URL to {edge.url}/v1" in error["message"]
    assert nowhere.status_code == 404
    assert "/v1" not in assert_envelope(nowhere.json(), type="invalid_request_error", code="not_found")["message"]
    assert wrong_method.status_code == 405
    assert_envelope(wrong_method.json(), type="invalid_request_error", code="method_not_allowed")


# --- slow and oversized requests --------------------------------------------------------------------------------------


async def test_oversized_headers_are_refused_with_431(edge: Edge) -> None:
    big = "a" * (16 * 1024)
    complete = f"GET /health HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n".encode()
    # A header that never ends, still arriving when it is refused: the client reads the answer, not a reset.
    endless = f"GET /health HTTP/1.1\r\nhost: x\r\nx-big: {big * 16}".encode()
    for request in (complete, endless):
        reader, writer = await edge.connect()
        writer.write(request)
        status, headers, body = parse(await read_all(reader))
        assert status == 431
        assert headers["connection"] == "close"
        assert_envelope(body, type="invalid_request_error", code="headers_too_large")
        await closed_by_server(writer)


async def test_headers_within_the_limit_are_served(edge: Edge) -> None:
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as http:
        response = await http.get("/health", headers={"x-fine": "b" * 4096})
    assert response.status_code == 200


async def test_headers_that_stop_arriving_end_the_connection(edge: Edge) -> None:
    reader, writer = await edge.connect()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-")
    raw = await read_all(reader)  # fails unless the server closes the connection
    assert raw == b"" or parse(raw)[0] == 408
    await closed_by_server(writer)


async def test_a_body_that_stops_arriving_is_answered_408(edge: Edge) -> None:
    reader, writer = await edge.connect()
    writer.write(edge.chat_head(200) + b'{"model": "gpt-4o-mini", ')
    status, headers, body = parse(await read_all(reader))
    assert status == 408
    assert headers["connection"] == "close"
    assert "x-request-id" in headers
    assert_envelope(body, type="invalid_request_error", code="request_timeout")
    await closed_by_server(writer)


async def test_a_slow_body_that_keeps_arriving_is_served(edge: Edge) -> None:
    payload = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES})
    reader, writer = await edge.connect()
    writer.write(edge.chat_head(len(payload)))
    for i in range(0, len(payload), 16):  # longer in total than the stall timeout, never silent for long
        writer.write(payload[i:i + 16])
        await asyncio.sleep(STALL / 5)
    async with asyncio.timeout(PATIENCE):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    await closed_by_server(writer)


async def test_idle_connections_are_closed(edge: Edge) -> None:
    silent_reader, silent = await edge.connect()  # connects and never sends a byte
    reader, writer = await edge.connect()
    writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    async with asyncio.timeout(PATIENCE):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in head.lower()
    length = int(parse(head)[1]["content-length"])
    await reader.readexactly(length)
    assert await read_all(reader) == b""  # the kept-alive connection, idle, is closed
    assert await read_all(silent_reader) == b""
    await closed_by_server(writer)
    await closed_by_server(silent)


async def test_a_connection_answered_before_its_body_arrived_is_still_closed(edge: Edge) -> None:
    body = b'{"model": "gpt-4o-mini"}'
    for send_the_rest in (True, False):
        reader, writer = await edge.connect()
        writer.write(edge.chat_head(len(body)).replace(edge.key.encode(), b"nk-not-a-key"))
        async with asyncio.timeout(PATIENCE):
            head = await reader.readuntil(b"\r\n\r\n")  # refused on its key before the body was read
        assert head.startswith(b"HTTP/1.1 401 ")
        await reader.readexactly(int(parse(head)[1]["content-length"]))
        if send_the_rest:
            writer.write(body)  # the body after the answer, then silence
        assert await read_all(reader) == b""
        await closed_by_server(writer)


async def test_connections_beyond_the_cap_are_refused_with_503(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    async with gateway(settings, tmp_path, fake_upstream, client_body_timeout=60, keep_alive_timeout=60) as edge:
        held = [await edge.connect() for _ in range(CAP)]
        for reader, writer in held:  # each answered once, so each is surely counted by the server
            writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            async with asyncio.timeout(PATIENCE):
                head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(parse(head)[1]["content-length"]))
        reader, writer = await edge.connect()
        writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")  # sent at once, as clients do: no reset
        status, headers, body = parse(await read_all(reader))
        assert status == 503 and headers["retry-after"] == "1"
        assert_envelope(body, type="server_error", code="too_many_connections")
        await closed_by_server(writer)
        await closed_by_server(held.pop()[1])  # one leaves: a newcomer is served again
        async with httpx.AsyncClient(base_url=edge.url, timeout=10) as http:
            for _ in range(100):
                with suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("a connection below the cap was still refused")
        for _, writer in held:
            await closed_by_server(writer)
