"""A loopback TCP door in front of the real Redis that a test opens, shuts (Redis down) or jams (Redis hung)."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

Mode = Literal["open", "down", "hung"]


class RedisDoor:
    """Forwards to Redis when open; when down, closes each connection at once; when hung, accepts and never answers.

    `hung_connections` counts the connections accepted while hung: a client opens one per command it sends after
    a timeout (a timed-out connection is dropped), so it counts the times a client waited on the hung Redis.
    """

    def __init__(self, target_url: str, mode: Mode = "open") -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._db_path = parts.path or "/0"
        self.mode: Mode = mode
        self.hung_connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> RedisDoor:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}{self._db_path}"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
        self.set("down")
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def set(self, mode: Mode) -> None:
        """Change what the door does; connections made before are cut, as a restart or a network fault would."""
        self.mode = mode
        for writer in list(self._writers):
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.mode == "open":
                await self._forward(reader, writer)
            elif self.mode == "hung":
                self.hung_connections += 1
                while await reader.read(65536):
                    pass  # swallow the commands, never answer
        except OSError:
            pass  # a cut connection
        finally:
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.close()
