"""`plinth.Reads`: Core reads into rows or Pydantic models, on asyncpg and psycopg.

A schema of its own, created and seeded once per run in a database of its own
(the reads need committed rows: most go through the engine's pool, as in an app).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    URL,
    BigInteger,
    DateTime,
    Identity,
    Integer,
    String,
    event,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plinth import (
    ConfigurationError,
    Conflict,
    Database,
    DatabaseSettings,
    DataError,
    NotFound,
    Page,
    Reads,
    Repository,
    exception_handlers,
)
from plinth.db.lean_reads import enable_lean_reads
from plinth.repository import mapping
from plinth.repository import read_statements as statements_module
from plinth.repository.read_statements import order_names
from plinth.testing import create_database, drop_database

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "read_items"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column("name", String(50))  # attribute != column name
    price: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(String(50))


class Pair(Base):
    """A composite primary key."""

    __tablename__ = "read_pairs"

    room: Mapped[str] = mapped_column(String(20), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(50))


class Items(Reads[Item]):
    pass


class ItemRepository(Repository[Item]):
    pass


class ItemOut(BaseModel):
    id: int
    owner_id: int
    title: str
    price: int
    created_at: datetime.datetime
    note: str | None


class ItemName(BaseModel):
    """A subset of the columns, one through an alias."""

    id: int
    name: str = Field(alias="title")


ROWS = 60  # ids 1..60; owner i % 3; created_at in groups of four equal values


def _row(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "owner_id": i % 3,
        "title": f"item {i:02}",
        "price": (i * 7) % 10,
        "created_at": EPOCH + datetime.timedelta(hours=i // 4),
        "note": "odd" if i % 2 else None,
    }


def _columns(i: int) -> dict[str, Any]:
    """`_row(i)` keyed by column name, for Core inserts."""
    row = _row(i)
    row["name"] = row.pop("title")
    return row


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def reads_url(plinth_server: URL) -> AsyncIterator[URL]:
    name = f"plinth_test_reads_{os.getpid()}"
    url = await create_database(plinth_server, name)
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(insert(Item.__table__), [_columns(i) for i in range(1, ROWS + 1)])
        pairs = [
            {"room": "a", "number": 1, "label": "a1"},
            {"room": "b", "number": 2, "label": "b2"},
        ]
        await connection.execute(insert(Pair), pairs)
    await engine.dispose()
    try:
        yield url
    finally:
        await drop_database(plinth_server, name)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def read_engines(reads_url: URL) -> AsyncIterator[dict[str, AsyncEngine]]:
    engines = {
        "asyncpg": create_async_engine(reads_url, pool_size=2),
        "psycopg": create_async_engine(reads_url.set(drivername="postgresql+psycopg"), pool_size=2),
    }
    for engine in engines.values():
        async with engine.connect():  # the dialect learns the server's defaults
            pass
        assert enable_lean_reads(engine.sync_engine)
    yield engines
    for engine in engines.values():
        await engine.dispose()


@pytest.fixture(params=["asyncpg", "psycopg"])
def engine(request: pytest.FixtureRequest, read_engines: dict[str, AsyncEngine]) -> AsyncEngine:
    return read_engines[request.param]


@pytest.fixture
def items(engine: AsyncEngine) -> Items:
    return Items(engine)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()).split()[0])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


# -- by primary key ----------------------------------------------------------


async def test_get_is_one_select_and_returns_a_row_keyed_by_attribute(
    items: Items, engine: AsyncEngine
) -> None:
    with statements(engine) as seen:
        row = await items.get(5)
    assert seen == ["SELECT"]  # no BEGIN, no ROLLBACK: lean reads
    assert row is not None
    assert row.title == "item 05"
    assert row._mapping["created_at"] == _row(5)["created_at"]
    assert await items.get(10_000) is None
    assert await items.get(None) is None


async def test_get_into_a_schema_selects_only_its_fields(items: Items) -> None:
    assert await items.get(7, into=ItemOut) == ItemOut(**_row(7))
    named = await items.get_one(7, into=ItemName)
    assert (named.id, named.name) == (7, "item 07")
    with pytest.raises(NotFound, match="Item 0 not found"):
        await items.get_one(0, into=ItemOut)
    row = await items.get_one(8)
    assert row.id == 8
    with pytest.raises(NotFound):
        await items.get_one(0)


async def test_get_by_a_composite_key(engine: AsyncEngine) -> None:
    pairs = Reads(engine, model=Pair)
    row = await pairs.get(("b", 2))
    assert row is not None
    assert row.label == "b2"
    assert await pairs.get(("b", None)) is None
    with pytest.raises(TypeError, match="2 column"):
        await pairs.get("b")


# -- lists, pages, totals ----------------------------------------------------


async def test_list_filters_orders_and_limits_as_the_repository_does(items: Items) -> None:
    rows = await items.list(owner_id=1, order_by="-price", limit=5, offset=2)
    expected = sorted(
        (_row(i) for i in range(1, ROWS + 1) if i % 3 == 1), key=lambda r: (-r["price"], -r["id"])
    )
    assert [r.id for r in rows] == [r["id"] for r in expected[2:7]]  # fmt: skip
    everything = await items.list()
    assert [r.id for r in everything] == list(range(1, ROWS + 1))
    # where expressions, ORM attributes and None (IS NULL) go through an ad hoc statement
    rows = await items.list(Item.price > 5, order_by=Item.created_at.desc(), note=None)
    assert {r.id for r in rows} == {i for i in range(2, ROWS + 1, 2) if (i * 7) % 10 > 5}
    assert [r.created_at for r in rows] == sorted((r.created_at for r in rows), reverse=True)
    # a SQL expression as a keyword value is compared, not bound
    assert [r.id for r in await items.list(owner_id=literal(2) + 0, limit=2)] == [2, 5]
    models = await items.list(owner_id=2, limit=3, into=ItemOut)
    assert models == [ItemOut(**_row(i)) for i in (2, 5, 8)]
    with pytest.raises(TypeError, match="no column attribute 'colour'"):
        await items.list(colour="red")
    with pytest.raises(DataError, match="cannot order by"):
        await items.list(order_by="colour")


async def test_a_shape_is_built_once_and_reused(items: Items) -> None:
    first = items._select((), {"owner_id": 1}, ["-created_at"], 10, 0, None, None)
    second = items._select((), {"owner_id": 2}, ["-created_at"], 20, 0, None, None)
    assert first[0] is second[0]
    assert second[1] == {"plinth_by_owner_id": 2, "plinth_limit": 20}
    adhoc = items._select((Item.price > 1,), {}, None, None, 0, None, None)
    assert adhoc[0] is not items._select((Item.price > 1,), {}, None, None, 0, None, None)[0]


async def test_the_template_store_is_bounded(items: Items, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statements_module, "_MAX_TEMPLATES", 1)
    monkeypatch.setattr(statements_module, "_templates", {("other",): None})
    assert (await items.get(3)) is not None
    assert list(statements_module._templates) == [("pk", Item, None)]


async def test_page_walks_every_row_with_the_repositorys_cursors(
    items: Items, engine: AsyncEngine
) -> None:
    seen: list[int] = []
    after = None
    while True:
        page = await items.page(order_by=["-created_at"], limit=7, after=after, into=ItemName)
        seen += [item.id for item in page.items]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    expected = sorted(range(1, ROWS + 1), key=lambda i: (_row(i)["created_at"], i), reverse=True)
    assert seen == expected
    # The same opaque cursor as Repository.page: one continues the other.
    async with engine.connect() as connection, AsyncSession(bind=connection) as session:
        orm_page = await ItemRepository(session).page(order_by="-created_at", limit=7)
        core_page = await items.page(order_by="-created_at", limit=7)
        assert orm_page.next_cursor == core_page.next_cursor
        assert [i.id for i in orm_page.items] == [r.id for r in core_page.items]
        assert orm_page.next_cursor is not None
        core_next = await items.page(order_by="-created_at", limit=7, after=orm_page.next_cursor)
        orm_next = await ItemRepository(session).page(
            order_by="-created_at", limit=7, after=core_page.next_cursor
        )
        assert [r.id for r in core_next.items] == [i.id for i in orm_next.items]


async def test_page_with_filters_and_errors(items: Items) -> None:
    page = await items.page(Item.price >= 5, owner_id=0, limit=100)
    assert isinstance(page, Page)
    assert page.next_cursor is None
    assert [r.id for r in page.items] == [i for i in range(3, ROWS + 1, 3) if (i * 7) % 10 >= 5]
    first = await items.page(owner_id=0, limit=2)
    assert first.next_cursor is not None
    listed = await items.list(owner_id=0, limit=2, after=first.next_cursor)
    assert [r.id for r in listed] == [9, 12]
    with pytest.raises(DataError, match="invalid cursor"):
        await items.page(limit=2, after="not-a-cursor")
    with pytest.raises(ValueError, match="NOT NULL"):
        await items.page(order_by="note")


async def test_list_and_count_is_one_query_and_strips_the_total(
    items: Items, engine: AsyncEngine
) -> None:
    with statements(engine) as seen:
        rows, total = await items.list_and_count(owner_id=1, limit=4)
    assert seen == ["SELECT"]
    assert total == 20
    assert [r.id for r in rows] == [1, 4, 7, 10]
    assert list(rows[0]._mapping) == ["id", "owner_id", "title", "price", "created_at", "note"]
    models, total = await items.list_and_count(Item.price < 3, limit=2, into=ItemOut)
    assert total == len([i for i in range(1, ROWS + 1) if (i * 7) % 10 < 3])
    assert models == [ItemOut(**_row(i)) for i in (3, 6)]
    with statements(engine) as seen:
        assert await items.list_and_count(owner_id=1, limit=4, offset=100) == ([], 20)
    assert seen == ["SELECT", "SELECT"]  # past the end: the total needs a count
    assert await items.list_and_count(owner_id=7) == ([], 0)
    assert await items.list_and_count(owner_id=1, offset=100, into=ItemOut) == ([], 20)


async def test_exists_and_count(items: Items) -> None:
    assert await items.exists(owner_id=2)
    assert not await items.exists(Item.price > 100)
    assert await items.count() == ROWS
    assert await items.count(Item.note.is_(None), owner_id=0) == 10


async def test_a_failing_statement_is_raised_and_not_run_again(
    items: Items, engine: AsyncEngine
) -> None:
    # Only a read whose connection died runs once more (tests/test_failover.py);
    # an error of the statement itself reaches the caller after one run.
    with statements(engine) as seen, pytest.raises(DBAPIError, match="division by zero"):
        await items.count(Item.price / 0 > 1)
    assert seen == ["SELECT"]
    assert await items.count() == ROWS  # the connection went back to the pool usable


def test_order_names() -> None:
    assert order_names(None) == ()
    assert order_names("-a") == ("-a",)
    assert order_names(["a", "-b"]) == ("a", "-b")
    assert order_names(Item.price) is None
    assert order_names(Item.price.desc()) is None
    assert order_names(["a", Item.price]) is None


# -- sources and configuration ------------------------------------------------


async def test_reads_on_a_connection_see_its_transaction(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.begin()
        await connection.execute(insert(Item.__table__), [_columns(999)])
        on_connection = Items(connection)
        assert (await on_connection.get_one(999)).title == "item 999"
        assert await Items(engine).get(999) is None  # not committed
        await connection.rollback()


async def test_a_database_reads_through_its_engine_or_its_test_binding(reads_url: URL) -> None:
    database = Database(DatabaseSettings.load(database_url=reads_url))
    async with database:
        items = Items(database)
        assert database.read_bind is database.engine
        assert await items.count() == ROWS
        async with database.engine.connect() as connection:
            await connection.begin()
            await connection.execute(insert(Item.__table__), [_columns(998)])
            async with database.bind(connection):
                assert database.read_bind is connection
                assert await items.count() == ROWS + 1
            assert database.read_bind is database.engine
            assert await items.count() == ROWS
            await connection.rollback()


async def test_the_dependency_serves_one_shared_instance(reads_url: URL) -> None:
    database = Database(DatabaseSettings.load(database_url=reads_url))
    # (This module's annotations are strings: a default keeps the dependency local.)
    reads = Items.depends(database)
    app = FastAPI(lifespan=database.lifespan, exception_handlers=exception_handlers)
    instances: set[int] = set()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, items: Items = reads) -> ItemOut:
        instances.add(id(items))
        return await items.get_one(item_id, into=ItemOut)

    @app.get("/items")
    async def list_items(owner_id: int, items: Items = reads) -> dict[str, Any]:
        rows, total = await items.list_and_count(owner_id=owner_id, limit=2, into=ItemOut)
        return {"items": rows, "total": total}

    async with (
        database,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        response = await client.get("/items/4")
        assert response.status_code == 200
        assert response.json()["title"] == "item 04"
        assert (await client.get("/items/0")).status_code == 404
        page = (await client.get("/items?owner_id=2")).json()
        assert (page["total"], [i["id"] for i in page["items"]]) == (20, [2, 5])
    assert len(instances) == 1


async def test_a_model_is_required(engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError, match="has no model"):
        Reads(engine)

    class Explicit(Reads[Item]):
        model = Item

    class Nothing(BaseModel):
        model_config = ConfigDict(extra="ignore")
        colour: str

    assert Explicit(engine).model is Item
    assert Items.depends(engine) is not None
    with pytest.raises(ConfigurationError, match="no field named after a column"):
        await Items(engine).get(1, into=Nothing)


async def test_reads_accept_a_sessions_connection(engine: AsyncEngine) -> None:
    async with AsyncSession(bind=engine) as session:
        connection: AsyncConnection = await session.connection()
        assert await Items(connection).exists(owner_id=0)
        assert (await session.scalar(select(Item.id).where(Item.id == 1))) == 1


# -- Repository.create into a schema ----------------------------------------


class Gadget(Base):
    """Server and Python defaults, and a column named apart from its attribute."""

    __tablename__ = "read_gadgets"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    label: Mapped[str] = mapped_column("name", String(50), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="plain")
    made_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Gizmo(Gadget):
    """Single-table inheritance: created through the ORM."""


class GadgetOut(BaseModel):
    id: int
    label: str
    kind: str
    made_at: datetime.datetime


class Gadgets(Repository[Gadget]):
    pass


class Gizmos(Repository[Gizmo]):
    pass


class GadgetName(BaseModel):
    id: int
    name: str = Field(alias="label")


class NoColumns(BaseModel):
    unrelated: int


@pytest.fixture
async def gadget_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with engine.connect() as connection:
        async with AsyncSession(bind=connection) as session:
            yield session
        await connection.rollback()


async def test_create_into_a_schema_is_one_insert_and_builds_no_orm_instance(
    engine: AsyncEngine, gadget_session: AsyncSession
) -> None:
    gadgets = Gadgets(gadget_session)
    with statements(engine) as seen:
        made = await gadgets.create(label="lamp", into=GadgetOut)
    assert seen == ["INSERT"]
    assert isinstance(made, GadgetOut)
    assert made.label == "lamp"
    assert made.kind == "plain"  # the Python-side default
    assert made.made_at.tzinfo is not None  # the server default, returned
    assert not gadget_session.identity_map
    # Same shape again: the prebuilt statement, the next row.
    again = await gadgets.create(label="desk", kind="tall", into=GadgetOut)
    assert (again.id, again.kind) == (made.id + 1, "tall")
    named = await gadgets.create(label="chair", into=GadgetName)
    assert (named.id, named.name) == (made.id + 2, "chair")


async def test_create_into_a_schema_translates_errors_and_refuses_unknown_names(
    gadget_session: AsyncSession,
) -> None:
    gadgets = Gadgets(gadget_session)
    await gadgets.create(label="lamp", into=GadgetOut)
    with pytest.raises(Conflict):
        await gadgets.create(label="lamp", into=GadgetOut)
    await gadget_session.rollback()
    with pytest.raises(TypeError, match="no column attribute 'colour'; valid: id, kind, label"):
        await gadgets.create(label="x", colour="red", into=GadgetOut)
    with pytest.raises(ConfigurationError, match="NoColumns has no field named after a column"):
        await gadgets.create(label="x", into=NoColumns)


async def test_create_into_a_schema_of_an_inheriting_model_goes_through_the_orm(
    gadget_session: AsyncSession,
) -> None:
    made = await Gizmos(gadget_session).create(label="gizmo", into=GadgetOut)
    assert isinstance(made, GadgetOut)
    assert made.label == "gizmo"
    assert made.kind == "plain"


async def test_the_prebuilt_insert_store_is_bounded(
    gadget_session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mapping, "_MAX_INSERTS", 1)
    monkeypatch.setattr(mapping, "_inserts", {("other",): None})
    await Gadgets(gadget_session).create(label="lamp", into=GadgetOut)
    assert list(mapping._inserts) == [(Gadget.__mapper__, GadgetOut, ("label",))]


# -- expressions selected as columns -------------------------------------------


class ItemsWithFlags(Reads[Item]):
    expressions = {"has_note": Item.note.is_not(None)}  # noqa: RUF012


class ItemFlag(BaseModel):
    id: int
    has_note: bool


async def test_expressions_are_read_as_columns_by_name(engine: AsyncEngine) -> None:
    flagged = ItemsWithFlags(engine)
    assert await flagged.get(3, into=ItemFlag) == ItemFlag(id=3, has_note=True)
    assert await flagged.list(owner_id=1, limit=2, into=ItemFlag) == [
        ItemFlag(id=1, has_note=True),
        ItemFlag(id=4, has_note=False),
    ]
    row = await flagged.get(4)
    assert row is not None
    assert (row.note, row.has_note) == (None, False)
    # The model's plain Reads (same model, same shapes) selects no flag.
    plain = await Items(engine).get(4)
    assert plain is not None
    assert "has_note" not in plain._mapping
    assert await Items(engine).list(owner_id=1, limit=2, into=ItemName) == [
        ItemName(id=1, title="item 01"),
        ItemName(id=4, title="item 04"),
    ]
