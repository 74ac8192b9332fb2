"""The Database lifecycle, start-up retries, and the unit of work.

No `from __future__ import annotations`: FastAPI must resolve the routes' local
`Session` alias at definition time.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import (
    Database,
    DatabaseSettings,
    DatabaseStateError,
    DatabaseUnavailableError,
    exception_handlers,
)

SECRET = "s3cr3t-pa55"


def database_at(url: URL | str, **settings: object) -> Database:
    return Database(DatabaseSettings.load(database_url=url, **settings))


async def test_lifecycle_is_explicit(scratch_url: URL) -> None:
    database = database_at(scratch_url)
    with pytest.raises(DatabaseStateError, match=r"Database is new: call `await database\.start"):
        database.session()
    async with database:
        async with database.transaction() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        assert "started" in repr(database)
    assert "closed" in repr(database)
    with pytest.raises(DatabaseStateError, match="Database is closed"):
        await database.start()


async def test_unreachable_host_is_retried_with_backoff_then_fails_clearly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = database_at(
        f"postgresql://app:{SECRET}@127.0.0.1:1/app", connect_retries=3, retry_delay=0.01
    )
    with (
        caplog.at_level(logging.WARNING, "plinth"),
        pytest.raises(DatabaseUnavailableError) as caught,
    ):
        await database.start()
    message = str(caught.value)
    assert "after 4 attempts" in message
    assert "connection refused" in message
    assert "postgresql+asyncpg://app:***@127.0.0.1:1/app" in message
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert [m.split("; ")[1] for m in retries] == [
        "retry 1 of 3 in 0.0 s",
        "retry 2 of 3 in 0.0 s",
        "retry 3 of 3 in 0.0 s",
    ]
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert SECRET not in repr(database)


async def test_backoff_doubles(caplog: pytest.LogCaptureFixture) -> None:
    database = database_at("postgresql://127.0.0.1:1/app", connect_retries=2, retry_delay=0.05)
    with caplog.at_level(logging.WARNING, "plinth"), pytest.raises(DatabaseUnavailableError):
        await database.start()
    delays = [r.args[-1] for r in caplog.records if "retry" in r.msg]
    assert delays == [0.05, 0.1]


async def test_missing_database_fails_at_once(plinth_server: URL) -> None:
    database = database_at(plinth_server.set(database="no_such_db"), retry_delay=5)
    with pytest.raises(DatabaseUnavailableError, match=r"after 1 attempt .*no_such_db"):
        await database.start()


async def test_ping_reports_latency_and_version(scratch_url: URL) -> None:
    async with database_at(scratch_url) as database:
        ping = await database.ping()
    assert ping.latency_ms >= 0
    assert ping.server_version.split(".")[0].isdigit()


@pytest.fixture
async def deferred_app(scratch_url: URL) -> AsyncIterator[tuple[FastAPI, Database]]:
    """An app whose writes pass every statement but fail at COMMIT (a deferred FK)."""
    database = database_at(scratch_url)
    await database.start()
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE parents (id int PRIMARY KEY)"))
        await session.execute(
            text(
                "CREATE TABLE children (id int PRIMARY KEY, parent_id int "
                "REFERENCES parents DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    Session = Annotated[AsyncSession, database.depends]
    app = FastAPI(exception_handlers=exception_handlers)

    @app.post("/children/{child}/{parent}", status_code=201)
    async def create_child(child: int, parent: int, session: Session) -> dict[str, int]:
        await session.execute(
            text("INSERT INTO children VALUES (:c, :p)"), {"c": child, "p": parent}
        )
        return {"id": child}

    @app.post("/parents/{parent}/then-fail")
    async def fail_after_write(parent: int, session: Session) -> None:
        await session.execute(text("INSERT INTO parents VALUES (:p)"), {"p": parent})
        raise HTTPException(400, "changed my mind")

    try:
        yield app, database
    finally:
        await database.close()


async def count(database: Database, table: str) -> int:
    async with database.session() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_failed_commit_is_an_error_response_and_saves_nothing(
    deferred_app: tuple[FastAPI, Database],
) -> None:
    app, database = deferred_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/children/1/999")
    assert response.status_code == 422, response.text
    assert response.json()["constraint"] == "children_parent_id_fkey"
    assert await count(database, "children") == 0


async def test_successful_request_is_committed_before_the_response(
    deferred_app: tuple[FastAPI, Database],
) -> None:
    app, database = deferred_app
    async with database.transaction() as session:
        await session.execute(text("INSERT INTO parents VALUES (7)"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/children/1/7")
    assert response.status_code == 201
    assert await count(database, "children") == 1


async def test_exception_in_the_route_rolls_back(deferred_app: tuple[FastAPI, Database]) -> None:
    app, database = deferred_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/parents/5/then-fail")
    assert response.status_code == 400
    assert await count(database, "parents") == 0


async def test_a_request_cancelled_during_its_commit_still_ends_its_unit_of_work(
    deferred_app: tuple[FastAPI, Database],
) -> None:
    app, database = deferred_app
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE slow (id int PRIMARY KEY)"))
        await session.execute(
            text(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$"
            )
        )
        await session.execute(
            text(
                "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow DEFERRABLE "
                "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
        )
    Session = Annotated[AsyncSession, database.depends]

    @app.post("/slow/{row}")
    async def insert_slowly(row: int, session: Session) -> None:
        await session.execute(text("INSERT INTO slow VALUES (:row)"), {"row": row})

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        request = asyncio.create_task(client.post("/slow/1"))
        await asyncio.sleep(0.25)  # the COMMIT is waiting for the deferred trigger
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    # The commit ran to its end before the cancellation went on; the connection is back.
    assert await count(database, "slow") == 1
    assert database.engine.sync_engine.pool.checkedout() == 0
