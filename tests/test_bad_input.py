"""Never a 500 for bad data: each class of bad input, on both drivers (issue 10).

The driver refuses some values before the server sees them (an integer beyond
its type on asyncpg, NUL and lone surrogates on psycopg), so no SQLSTATE
reaches the translation; the server refuses others (a negative LIMIT). Each
becomes `InvalidValue` naming the column, or LIMIT / OFFSET, never the value.
The request-side bounds of `plinth.web.params` stop most of them earlier.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy import (
    URL,
    BigInteger,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    insert,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy import column as sql_column
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from plinth import (
    BoundedJson,
    BoundedJsonObject,
    Int4,
    Int4Id,
    Int8Id,
    InvalidValue,
    Limit,
    Offset,
    PgText,
    exception_handlers,
    limit_bounds,
)
from plinth.driver_errors import translate_dbapi_error

DRIVERS = ["postgresql+asyncpg", "postgresql+psycopg"]
SECRET = "sekrit-value"
things = table(
    "things",
    sql_column("small", Integer),
    sql_column("big", BigInteger),
    sql_column("label", String),
)


@pytest.fixture(params=DRIVERS)
async def engine(request: pytest.FixtureRequest, scratch_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(scratch_url.set(drivername=request.param))
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE things (small int, big bigint, label text)"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        yield connection


async def refused(connection: AsyncConnection, statement: Any) -> InvalidValue:
    """The `InvalidValue` that the failure of `statement` translates to."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 - each driver its own class
        async with connection.begin_nested():
            await connection.execute(statement)
    translated = translate_dbapi_error(caught.value)
    assert isinstance(translated, InvalidValue), repr(caught.value)
    assert SECRET not in str(translated)
    return translated


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (insert(things).values(small=2**40), "number out of range for 'small'"),
        (insert(things).values(small=-(2**31) - 1), "number out of range for 'small'"),
        (insert(things).values(big=2**70), "number out of range for 'big'"),
        (select(things.c.label).where(things.c.small == 2**33), "number out of range for 'small'"),
        (select(literal_column("1")).limit(2**64), "number out of range for 'LIMIT'"),
        (select(literal_column("1")).offset(2**64), "number out of range for 'OFFSET'"),
        (select(literal_column("1")).limit(-1), "LIMIT must not be negative"),
        (select(literal_column("1")).offset(-1), "OFFSET must not be negative"),
        (
            insert(things).values(small=1, label=f"{SECRET}\x00"),
            "text with a NUL character for 'label'",
        ),
        (select(things.c.small).where(things.c.label == f"{SECRET}\x00"), "NUL character"),
    ],
)
async def test_values_refused_before_or_by_the_server(
    connection: AsyncConnection, statement: Any, message: str
) -> None:
    assert message in str(await refused(connection, statement))


async def test_a_lone_surrogate(connection: AsyncConnection) -> None:
    # asyncpg wraps its encoder's UnicodeEncodeError; psycopg lets it out as is.
    error = await refused(connection, insert(things).values(label=f"{SECRET}\ud800"))
    assert "text with a character that cannot be stored" in str(error)
    if connection.dialect.driver == "asyncpg":
        assert "for 'label'" in str(error)


class Utf8Bytes(TypeDecorator[str]):
    """Encodes in its bind processor, as `EncryptedText` does."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> bytes | None:
        return None if value is None else value.encode("utf-8")


async def test_a_surrogate_in_a_bind_processor(connection: AsyncConnection) -> None:
    blobs = table("blobs", sql_column("data", Utf8Bytes()))
    await connection.execute(text("CREATE TEMP TABLE blobs (data bytea)"))
    with pytest.raises(StatementError) as caught:
        await connection.execute(insert(blobs).values(data="\udfff"))
    assert isinstance(translate_dbapi_error(caught.value), InvalidValue)


async def test_a_wrong_type_from_the_code_is_not_the_clients_fault(scratch_url: URL) -> None:
    # asyncpg refuses a str for an integer with a TypeError behind: a bug, a 500.
    engine = create_async_engine(scratch_url)
    async with engine.connect() as connection:
        with pytest.raises(Exception) as caught:  # noqa: PT011
            await connection.execute(text("SELECT CAST(:v AS int)"), {"v": "12"})
    await engine.dispose()
    assert translate_dbapi_error(caught.value) is None


def app_on(engine: AsyncEngine) -> FastAPI:
    """An app writing whatever it is given: no request-side bounds."""
    app = FastAPI(exception_handlers=exception_handlers)

    @app.post("/things")
    async def create(body: dict[str, Any]) -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(things).values(**body))

    @app.get("/things")
    async def page(limit: int = 10, offset: int = 0) -> list[int]:
        async with engine.connect() as connection:
            rows = await connection.scalars(select(things.c.small).limit(limit).offset(offset))
            return list(rows)

    @app.get("/encode")
    async def encode() -> str:
        return "é".encode("ascii").decode()  # the server's own bug

    return app


async def call(app: FastAPI, method: str, url: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("headers", {"content-type": "application/json"})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, url, **kwargs)


@pytest.mark.parametrize(
    ("method", "url", "body", "detail"),
    [
        ("POST", "/things", '{"small": 99999999999}', "number out of range for 'small'"),
        ("POST", "/things", '{"big": 1e30}', None),
        ("POST", "/things", '{"big": 100000000000000000000}', "number out of range for 'big'"),
        ("POST", "/things", '{"label": "sekrit-value\\u0000"}', "NUL character for 'label'"),
        ("POST", "/things", '{"label": "sekrit-value\\ud800"}', "cannot be stored"),
        ("GET", "/things?limit=-1", None, "LIMIT must not be negative"),
        ("GET", "/things?offset=-1", None, "OFFSET must not be negative"),
        ("GET", "/things?limit=99999999999999999999", None, "number out of range for 'LIMIT'"),
        ("GET", "/things?offset=99999999999999999999", None, "number out of range for 'OFFSET'"),
    ],
)
async def test_bad_data_is_422_over_http(
    engine: AsyncEngine, method: str, url: str, body: str | None, detail: str | None
) -> None:
    response = await call(
        app_on(engine), method, url, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    if detail is not None:
        assert detail in response.json()["detail"]
    assert SECRET not in response.text


async def test_an_unknown_error_stays_a_500(engine: AsyncEngine) -> None:
    assert (await call(app_on(engine), "GET", "/encode")).status_code == 500


# ---- request-side bounds (plinth.web.params) ----


class Note(BaseModel):
    text: Annotated[PgText, Field(max_length=20)]
    meta: BoundedJsonObject | None = None
    size: Int4 = 0


bounds = FastAPI(exception_handlers=exception_handlers)


@bounds.post("/notes/{note_id}")
async def post_note(
    note_id: Int4Id,
    note: Note,
    limit: Limit = 20,
    offset: Offset = 0,
    wide: Annotated[int, limit_bounds(500)] = 1,
    q: Annotated[PgText | None, Query(max_length=50)] = None,
) -> Note:
    return note


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("url", "body", "status"),
    [
        ("/notes/1", '{"text": "ok"}', 200),
        ("/notes/0", '{"text": "ok"}', 422),
        ("/notes/2147483648", '{"text": "ok"}', 422),
        ("/notes/1?limit=100&wide=500&offset=9223372036854775807", '{"text": "ok"}', 200),
        ("/notes/1?limit=0", '{"text": "ok"}', 422),
        ("/notes/1?limit=101", '{"text": "ok"}', 422),
        ("/notes/1?limit=1000000", '{"text": "ok"}', 422),
        ("/notes/1?wide=501", '{"text": "ok"}', 422),
        ("/notes/1?offset=-1", '{"text": "ok"}', 422),
        ("/notes/1?offset=9223372036854775808", '{"text": "ok"}', 422),
        ("/notes/1?q=a%00b", '{"text": "ok"}', 422),
        ("/notes/1", '{"text": "ok", "size": 2147483648}', 422),
        ("/notes/1", '{"text": "a\\u0000b"}', 422),
        ("/notes/1", '{"text": "a\\ud800b"}', 422),
        ("/notes/1", '{"text": "ok", "meta": {"k": "a\\u0000"}}', 422),
        ("/notes/1", '{"text": "ok", "meta": {"\\udfff": 1}}', 422),
        ("/notes/1", '{"text": "ok", "meta": ' + nested(31) + "}", 200),
        ("/notes/1", '{"text": "ok", "meta": ' + nested(33) + "}", 422),
        # Deeper than Pydantic's serializer goes: refused before anything runs.
        ("/notes/1", '{"text": "ok", "meta": ' + nested(300) + "}", 422),
    ],
)
async def test_request_bounds(url: str, body: str, status: int) -> None:
    response = await call(bounds, "POST", url, content=body)
    assert response.status_code == status, response.text


async def test_a_422_does_not_echo_the_input() -> None:
    # FastAPI's own handler echoes each invalid value, and answers 500 when one
    # holds a lone surrogate (found by the fuzz, tests/test_fuzz.py).
    body = '{"\\ud800sekrit-value": 1, "text": "sekrit-value\\u0000"}'
    response = await call(bounds, "POST", "/notes/1", content=body)
    assert response.status_code == 422
    assert SECRET not in response.text
    assert [error["loc"] for error in json.loads(response.text)["detail"]] == [["body", "text"]]


def test_bounds_in_plain_pydantic() -> None:
    assert TypeAdapter(Int8Id).validate_python(2**63 - 1) == 2**63 - 1
    with pytest.raises(ValidationError):
        TypeAdapter(Int8Id).validate_python(2**63)
    assert TypeAdapter(BoundedJson).validate_python([[["x"]]]) == [[["x"]]]
    with pytest.raises(ValidationError, match="nested deeper than 32"):
        TypeAdapter(BoundedJson).validate_json("[" * 40 + "]" * 40)
