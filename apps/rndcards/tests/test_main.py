"""GET /health: 200 connected, 503 disconnected."""

from __future__ import annotations

import os

import httpx
from fastapi import FastAPI
from sqlalchemy import URL

from plinth import Database, DatabaseSettings
from plinth.testing import create_database, drop_database
from rndcards.main import VERSION
from rndcards.routes.health import health_router


async def test_health_is_connected(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "version": "1.0.0", "database": "connected"}


async def test_plinth_probes_are_mounted_too(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "alive"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["migrations"]["at_head"] is True


def _app(database: Database) -> FastAPI:
    app = FastAPI()
    app.include_router(health_router(database, VERSION))
    return app


async def _health(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get("/health")


async def test_health_is_disconnected_when_the_database_goes_away(plinth_server: URL) -> None:
    name = f"rndcards_health_{os.getpid()}"
    url = await create_database(plinth_server, name)
    settings = DatabaseSettings(database_url=url, connect_retries=0, pool_size=1)
    async with Database(settings) as database:
        app = _app(database)
        assert (await _health(app)).status_code == 200
        # Drop the database under the running app: its connections are cut
        # and new ones are refused.
        await drop_database(plinth_server, name)
        response = await _health(app)
    assert response.status_code == 503
    assert response.json() == {
        "status": "unhealthy",
        "version": "1.0.0",
        "database": "disconnected",
    }


async def test_health_is_disconnected_before_the_database_starts() -> None:
    database = Database(DatabaseSettings(database_url="postgresql://u:secret@127.0.0.1:1/x"))
    response = await _health(_app(database))
    assert response.status_code == 503
    assert response.json()["database"] == "disconnected"
    assert "secret" not in response.text
