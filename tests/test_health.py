"""Liveness and readiness, including a database that goes away mid-flight."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import URL

from plinth import Database, DatabaseSettings, health_router, migrations
from plinth.testing import CuttableProxy

TRANSLATOR_MIGRATIONS = Path(__file__).parents[1] / "apps" / "translator" / "migrations"


@pytest.fixture
async def proxied(scratch_url: URL) -> AsyncIterator[tuple[Database, CuttableProxy]]:
    assert scratch_url.port is not None
    proxy = CuttableProxy("127.0.0.1", scratch_url.port)
    port = await proxy.start()
    settings = DatabaseSettings.load(database_url=scratch_url.set(port=port))
    database = Database(settings, migrations=TRANSLATOR_MIGRATIONS)
    await database.start()
    try:
        yield database, proxy
    finally:
        await database.close()
        await proxy.cut()


def client_for(database: Database) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(health_router(database, timeout=1.0))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_ready_at_head_then_503_when_the_database_goes_away(
    proxied: tuple[Database, CuttableProxy],
) -> None:
    database, proxy = proxied
    async with database.engine.connect() as connection:
        await migrations.upgrade(connection, TRANSLATOR_MIGRATIONS)
    async with client_for(database) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["migrations"]["at_head"] is True
        # In words (SQLAlchemy's raw overflow() would read a negative count here).
        pool = body["pool"]
        assert (pool["size"], pool["in_use"], pool["max_overflow"]) == (5, 0, 10)
        assert pool["overflow_in_use"] == 0
        assert 1 <= pool["idle"] <= 5
        assert set(pool) == {"size", "in_use", "idle", "overflow_in_use", "max_overflow"}

        await proxy.cut()
        down = await client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        assert down.json()["reason"].startswith("database unreachable")
        assert "postgresql" not in down.json()["reason"]
        # Liveness never touches the database.
        assert (await client.get("/health/live")).status_code == 200


async def test_not_ready_when_the_schema_is_behind_the_code(
    proxied: tuple[Database, CuttableProxy],
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
    assert response.json()["reason"].startswith("database unreachable: Database is new")
