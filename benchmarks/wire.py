"""Count database round trips on the wire, whatever the driver does.

asyncpg's query logger misses statements run through prepared statements
(which is how SQLAlchemy's asyncpg dialect runs everything), and the server's
statement log needs superuser settings and parsing. Instead, a small TCP
proxy in front of the server counts ``ReadyForQuery`` messages: PostgreSQL
sends exactly one per simple query and per ``Sync`` of the extended
protocol, which is what a client waits for, so their number is the number
of round trips. The proxy is used only for counting, never for timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

__all__ = ["RoundTripCounter", "counting_proxy"]


class RoundTripCounter:
    """The number of round trips seen since the last `reset`."""

    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> None:
        self.count = 0


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: RoundTripCounter | None
) -> None:
    # Server-to-client traffic is parsed message by message: one type byte and
    # a length that includes itself. The one exception is the single-byte
    # answer ('N' or 'S') to an SSLRequest or GSSENCRequest at the start.
    buffer = b""
    started = False
    try:
        while data := await reader.read(65536):
            writer.write(data)
            if counter is not None:
                buffer += data
                while True:
                    if not started and buffer[:1] in (b"N", b"S"):
                        buffer = buffer[1:]
                        continue
                    if len(buffer) < 5:
                        break
                    started = True
                    (length,) = struct.unpack("!i", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    if buffer[:1] == b"Z":
                        counter.count += 1
                    buffer = buffer[1 + length :]
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def counting_proxy(
    host: str, port: int, counter: RoundTripCounter
) -> AsyncIterator[tuple[str, int]]:
    """Serve a counting proxy to ``host:port``; yield the proxy's address."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, port)
        for task in (
            asyncio.create_task(_pump(client_r, server_w, None)),
            asyncio.create_task(_pump(server_r, client_w, counter)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
