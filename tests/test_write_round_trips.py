"""The round trips of a writing unit of work, counted on the wire, per driver.

psycopg sends ``BEGIN`` with the first write (`plinth.db.pipelined_begin`):
a single-insert unit of work costs 2 round trips there, 3 on asyncpg.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, DateTime, String, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plinth import Conflict, Database, DatabaseSettings, Repository

DRIVERS = ["postgresql+asyncpg", "postgresql+psycopg"]


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Items(Repository[Item]):
    pass


def _wire() -> Any:
    """``benchmarks/wire.py``: counts round trips (ReadyForQuery messages) on the wire."""
    path = Path(__file__).parents[1] / "benchmarks" / "wire.py"
    spec = importlib.util.spec_from_file_location("_plinth_bench_wire_writes", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=DRIVERS)
async def database(request: pytest.FixtureRequest, scratch_url: URL) -> AsyncIterator[Database]:
    url = scratch_url.set(drivername=request.param)
    database = Database(DatabaseSettings.load(database_url=url, pool_size=2, max_overflow=0))
    async with database:
        async with database.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        yield database


Work = Callable[[AsyncSession], Awaitable[object]]


async def _round_trips(url: URL, counter: Any) -> dict[str, int]:
    """Round trips per unit of work through `url` (the counting proxy)."""
    settings = DatabaseSettings.load(database_url=url, pool_size=1, max_overflow=0)
    names = iter(range(10_000))

    async def create(session: AsyncSession) -> None:
        await Items(session).create(name=f"{url.drivername} {next(names)}")

    async def read_then_create(session: AsyncSession) -> None:
        await Items(session).count()
        await create(session)

    async def create_twice(session: AsyncSession) -> None:
        await create(session)
        await create(session)

    async def conflict(session: AsyncSession) -> None:
        await Items(session).create(name=f"{url.drivername} 0")

    cases: dict[str, Work] = {
        "create": create,
        "read, create": read_then_create,
        "create twice": create_twice,
        "conflict": conflict,
    }
    async with Database(settings) as database:
        async with database.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)

        async def trips(work: Work) -> int:
            counter.reset()
            try:
                async with database.transaction() as session:
                    await work(session)
            except Conflict:
                pass
            return int(counter.count)

        for work in cases.values():  # warm up: prepared statements, type introspection
            await trips(work)
            await trips(work)
        measured = {name: await trips(work) for name, work in cases.items()}
        async with database.engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
    return measured


async def test_round_trips_of_writing_units_of_work(scratch_url: URL) -> None:
    """A single insert (the POST of a create endpoint): asyncpg 3, psycopg 2."""
    wire = _wire()
    counter = wire.RoundTripCounter()
    assert scratch_url.host is not None
    server = (scratch_url.host, scratch_url.port or 5432)
    async with wire.counting_proxy(*server, counter) as (host, port):
        measured = {
            driver: await _round_trips(
                scratch_url.set(drivername=driver, host=host, port=port), counter
            )
            for driver in DRIVERS
        }
    assert measured == {
        # BEGIN, INSERT ... RETURNING, COMMIT (ROLLBACK after a conflict)
        "postgresql+asyncpg": {"create": 3, "read, create": 4, "create twice": 4, "conflict": 3},
        # BEGIN and the INSERT in one round trip, COMMIT (or ROLLBACK)
        "postgresql+psycopg": {"create": 2, "read, create": 3, "create twice": 3, "conflict": 2},
    }


async def test_a_write_that_begins_the_transaction_returns_its_row(database: Database) -> None:
    async with database.transaction() as session:
        item = await Items(session).create(name="first")
        assert item.id == 1
        assert item.created_at is not None
        rows = await session.execute(insert(Item).values(name="second").returning(Item.name))
        assert rows.scalars().all() == ["second"]
    async with database.transaction() as session:
        assert await Items(session).count() == 2


async def test_everything_after_a_first_write_rolls_back_together(database: Database) -> None:
    async def handler() -> None:
        async with database.transaction() as session:
            await Items(session).create(name="one")
            await Items(session).create(name="two")
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await handler()
    async with database.transaction() as session:
        assert await Items(session).count() == 0
    # The pooled connection writes in a transaction again, not in autocommit.
    async with database.transaction() as session:
        await Items(session).create(name="three")
        async with database.engine.connect() as other:
            assert await other.scalar(select(func.count()).select_from(Item)) == 0
    async with database.engine.connect() as other:
        assert await other.scalar(select(func.count()).select_from(Item)) == 1


async def test_a_failing_first_write_is_translated_and_rolled_back(database: Database) -> None:
    async with database.transaction() as session:
        await Items(session).create(name="taken")

    async def taken() -> None:
        async with database.transaction() as session:
            await Items(session).create(name="taken")

    with pytest.raises(Conflict):
        await taken()
    async with database.transaction() as session:
        await Items(session).create(name="free")
        assert await Items(session).count() == 2


async def test_a_raw_connection_after_a_first_write_is_in_its_usual_state(
    database: Database,
) -> None:
    async with database.engine.connect() as connection:
        await connection.execute(insert(Item).values(name="uncommitted"))
        raw = (await connection.get_raw_connection()).dbapi_connection
        assert raw is not None
    # Closed without a commit: rolled back, and back to autocommit off in the pool.
    async with database.engine.connect() as connection:
        assert (await connection.get_raw_connection()).dbapi_connection is raw
        assert raw.autocommit is False
        assert await connection.scalar(select(func.count()).select_from(Item)) == 0
        await connection.execute(text("SELECT 1"))


async def test_a_first_write_cancelled_in_flight_leaves_a_usable_pool(
    database: Database,
) -> None:
    slow = text("INSERT INTO items (name) SELECT 'slow' FROM pg_sleep(0.5)")

    async def cancelled() -> None:
        async with asyncio.timeout(0.1), database.transaction() as session:
            await session.execute(slow)

    with pytest.raises(TimeoutError):
        await cancelled()
    for name in ("after", "again"):
        async with database.transaction() as session:
            await Items(session).create(name=name)
    await asyncio.sleep(0.6)  # the cancelled INSERT has ended on the server: rolled back
    async with database.transaction() as session:
        names = await session.scalars(select(Item.name).order_by(Item.id))
        assert list(names) == ["after", "again"]
