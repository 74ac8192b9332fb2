"""The HTTP API and GET /api/v1/health/db, through the app's own unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailagent.api import get_database
from mailagent.db import MailAgentDatabaseSettings, database
from mailagent.main import app
from plinth import Database
from plinth.db.engine import engine_arguments
from plinth.testing import CuttableProxy

PASSWORD = "hunter2-db-password"
TOKEN = "ya29.a0AfH6SMBx-access-token"


async def test_the_app_runs_on_psycopg(db_connection: AsyncConnection) -> None:
    assert db_connection.dialect.driver == "psycopg"
    async with database.transaction() as session:  # the app's own sessions, bound to the test
        assert (await session.connection()).dialect.driver == "psycopg"


def test_the_pool_is_the_seeds() -> None:
    settings = database.settings
    assert (settings.pool_size, settings.max_overflow, settings.driver) == (20, 10, "psycopg")
    url, options = engine_arguments(settings, URL.create("postgresql", host="db", database="m"))
    assert url.drivername == "postgresql+psycopg"
    assert (options["pool_size"], options["max_overflow"]) == (20, 10)


def test_the_environment_still_overrides_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    assert MailAgentDatabaseSettings.load().pool_size == 7


async def test_create_and_get_a_user(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/users", json={"email": "ada@example.com", "gmail_oauth_token": TOKEN}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["is_active"] is True
    assert body["onboarding_completed"] is False
    assert body["has_gmail_token"] is True
    assert TOKEN not in created.text  # tokens go in, and never come back out
    fetched = await client.get(f"/api/v1/users/{body['id']}")
    assert fetched.json() == body


async def test_get_reads_the_token_flag_without_the_token(client: httpx.AsyncClient) -> None:
    """GET reads through `plinth.Reads`: the flag is SQL (``IS NOT NULL``)."""
    created = await client.post("/api/v1/users", json={"email": "bob@example.com"})
    assert created.json()["has_gmail_token"] is False
    fetched = await client.get(f"/api/v1/users/{created.json()['id']}")
    assert fetched.content == created.content
    missing = await client.get("/api/v1/users/2147483647")
    assert (missing.status_code, missing.json()["detail"]) == (404, "user 2147483647 not found")


async def test_a_committed_user_is_in_the_database(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    created = await client.post("/api/v1/users", json={"email": "ada@example.com"})
    count = await db_session.execute(
        text("SELECT count(*) FROM users WHERE id = :id"), {"id": created.json()["id"]}
    )
    assert count.scalar_one() == 1


@pytest.mark.parametrize(
    ("second", "constraint"),
    [
        ({"email": "ada@example.com"}, "uq_users_email"),
        ({"email": "bob@example.com", "telegram_id": "42"}, "uq_users_telegram_id"),
    ],
)
async def test_duplicates_are_409_naming_the_constraint(
    client: httpx.AsyncClient, second: dict[str, str], constraint: str
) -> None:
    first = await client.post(
        "/api/v1/users", json={"email": "ada@example.com", "telegram_id": "42"}
    )
    assert first.status_code == 201
    response = await client.post("/api/v1/users", json=second)
    assert response.status_code == 409
    assert response.json()["constraint"] == constraint


async def test_users_without_telegram_are_fine(client: httpx.AsyncClient) -> None:
    for email in ("ada@example.com", "bob@example.com"):
        assert (await client.post("/api/v1/users", json={"email": email})).status_code == 201


async def test_update_a_user(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/v1/users", json={"email": "ada@example.com"})).json()
    updated = await client.patch(
        f"/api/v1/users/{created['id']}", json={"onboarding_completed": True, "telegram_id": "7"}
    )
    assert updated.status_code == 200
    assert updated.json()["onboarding_completed"] is True
    assert updated.json()["telegram_id"] == "7"


async def test_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/999999")
    assert response.status_code == 404


async def test_health_db_connected(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health/db")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "connected"
    assert body["server_version"]


@pytest.fixture
async def database_gone_away(plinth_server: URL) -> AsyncIterator[Database]:
    """A started Database whose server then became unreachable (its port is closed)."""
    proxy = CuttableProxy(plinth_server.host or "127.0.0.1", plinth_server.port or 5432)
    port = await proxy.start()
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{port}/{plinth_server.database}"
    down = Database(MailAgentDatabaseSettings.load(database_url=url, connect_retries=0))
    await down.start()
    try:
        await proxy.cut()
        yield down
    finally:
        await down.close()


async def test_health_db_disconnected_is_503_without_credentials(
    client: httpx.AsyncClient, database_gone_away: Database
) -> None:
    app.dependency_overrides[get_database] = lambda: database_gone_away
    try:
        responses = [await client.get("/api/v1/health/db") for _ in range(2)]
    finally:
        app.dependency_overrides.clear()
    # The first request finds the pooled connection dead, the second cannot connect.
    for response in responses:
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "disconnected"
        assert body["error"]
        assert PASSWORD not in response.text
        assert "postgresql" not in response.text  # no connection string, redacted or not
