"""Bad data is a 4xx naming what is wrong, on both drivers — never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import URL, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from plinth import Conflict, ConstraintViolation, InvalidValue, exception_handlers
from plinth.driver_errors import translate_dbapi_error

SCHEMA = (
    "CREATE TABLE things (id int PRIMARY KEY, code varchar(3) UNIQUE, "
    "size smallint CHECK (size > 0), made date)"
)


@pytest.fixture(params=["postgresql+asyncpg", "postgresql+psycopg"])
async def connection(
    request: pytest.FixtureRequest, scratch_url: URL
) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(scratch_url.set(drivername=request.param))
    async with engine.connect() as connection:
        await connection.execute(text(SCHEMA))
        await connection.execute(text("INSERT INTO things VALUES (1, 'abc', 1, NULL)"))
        yield connection
    await engine.dispose()


@pytest.mark.parametrize(
    ("values", "error", "detail"),
    [
        ("(2, 'abc', 1, NULL)", Conflict, "unique constraint 'things_code_key' violated"),
        ("(2, 'xyz', 0, NULL)", ConstraintViolation, "check constraint 'things_size_check'"),
        ("(2, 'toolong', 1, NULL)", InvalidValue, "value too long for its column"),
        ("(2, 'x', 40000, NULL)", InvalidValue, "number out of range"),
        ("(2, 'x', 1, '2024-13-45')", InvalidValue, "date"),
    ],
)
async def test_driver_errors_are_translated(
    connection: AsyncConnection, values: str, error: type[Exception], detail: str
) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with connection.begin_nested():
            await connection.execute(text(f"INSERT INTO things VALUES {values}"))
    translated = translate_dbapi_error(caught.value)
    assert type(translated) is error
    assert detail in str(translated)


async def test_a_server_error_is_not_translated(connection: AsyncConnection) -> None:
    with pytest.raises(DBAPIError) as caught:
        await connection.execute(text("SELECT * FROM no_such_table"))
    assert translate_dbapi_error(caught.value) is None


async def test_too_long_value_is_422_over_http(scratch_url: URL) -> None:
    engine = create_async_engine(scratch_url)
    async with engine.begin() as setup:
        await setup.execute(text(SCHEMA))
    app = FastAPI(exception_handlers=exception_handlers)

    @app.post("/things/{code}")
    async def create(code: str) -> None:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO things VALUES (2, :code, 1, NULL)"), {"code": code}
            )

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/things/much-too-long")
    await engine.dispose()
    assert response.status_code == 422
    assert response.json() == {"detail": "value too long for its column"}


async def test_a_server_error_stays_a_500(scratch_url: URL) -> None:
    engine = create_async_engine(scratch_url)
    app = FastAPI(exception_handlers=exception_handlers)

    @app.get("/broken")
    async def broken() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT * FROM no_such_table"))

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/broken")
    await engine.dispose()
    assert response.status_code == 500
