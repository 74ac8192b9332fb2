"""Liveness and readiness, including a database that goes away mid-flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import URL

from plinth import Database, DatabaseSettings, health_router, migrations

TRANSLATOR_MIGRATIONS = Path(__file__).parents[1] / "apps" / "translator" / "migrations"


class Proxy:
    """A TCP forwarder to PostgreSQL that can be cut, like a network partition."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self.writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


@pytest.fixture
async def proxied(scratch_url: URL) -> AsyncIterator[tuple[Database, Proxy]]:
    assert scratch_url.port is not None
    proxy = Proxy(scratch_url.port)
    port = await proxy.start()
    settings = DatabaseSettings.load(database_url=scratch_url.set(port=port))
    database = Database(settings, migrations=TRANSLATOR_MIGRATIONS)
    await database.start()
    try:
        yield database, proxy
    finally:
        await database.close()
        with contextlib.suppress(Exception):
            await proxy.cut()


def client_for(database: Database) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(health_router(database, timeout=1.0))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_ready_at_head_then_503_when_the_database_goes_away(
    proxied: tuple[Database, Proxy],
) -> None:
    database, proxy = proxied
    async with database.engine.connect() as connection:
        await migrations.upgrade(connection, TRANSLATOR_MIGRATIONS)
    async with client_for(database) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["migrations"]["at_head"] is True
        assert body["pool"]["size"] == 5

        await proxy.cut()
        down = await client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        assert down.json()["reason"].startswith("database unreachable")
        assert "postgresql" not in down.json()["reason"]
        # Liveness never touches the database.
        assert (await client.get("/health/live")).status_code == 200


async def test_not_ready_when_the_schema_is_behind_the_code(
    proxied: tuple[Database, Proxy],
) -> None:
    database, _ = proxied
    async with client_for(database) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["migrations"] == {"current": [], "head": ["0001"], "at_head": False}
    assert "code expects ['0001']" in body["reason"]


async def test_not_ready_before_start() -> None:
    database = Database(DatabaseSettings.load(database_url="postgresql://127.0.0.1:1/x"))
    async with client_for(database) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert "not started" in response.json()["reason"] or "new" in response.json()["reason"]
