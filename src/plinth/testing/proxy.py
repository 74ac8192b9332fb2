"""A TCP forwarder that a test can cut, to simulate a database outage."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["CuttableProxy"]


class CuttableProxy:
    """A TCP forwarder to a server that a test can cut, like a network partition.

    Point a `Database` at `start()`'s port, then `cut()`: pooled connections
    die and new ones are refused, as when the database host goes away.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        """The server's ``(host, port)`` that connections are forwarded to."""
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on a free port of 127.0.0.1 and return it."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream = await asyncio.open_connection(*self.target)
        self._writers += [writer, upstream]
        await asyncio.gather(self._pipe(reader, upstream), self._pipe(upstream_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def cut(self) -> None:
        """Stop listening and abort every forwarded connection (idempotent)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
