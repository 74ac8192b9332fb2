"""A unit of work's first read runs once more when its connection dies; a write never does.

The connections are killed for real, with ``pg_terminate_backend``, on both
drivers: an idle pooled connection (psycopg hands it out, asyncpg's checkout
check may not see it), and a connection in the middle of the first statement.
The statements sleep while a marker row exists, so the test kills each one
while it runs and the run after it (a retry) finds out how many kills are left.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import (
    URL,
    Column,
    Integer,
    Table,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plinth import Database, DatabaseSettings, Reads
from plinth.driver_errors import translate_outage
from plinth.errors import DatabaseUnavailableError

DRIVERS = ["asyncpg", "psycopg"]
_names = itertools.count()


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "failover_rows"
    n: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


metadata = Base.metadata

# Each kill takes one marker row away; a statement sleeps while any is left.
marker = Table("failover_marker", metadata, Column("n", Integer))
_SLEEP = func.pg_sleep(literal_column("(SELECT count(*) * 30 FROM failover_marker)"))


@pytest.fixture
async def admin(scratch_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(scratch_url, isolation_level="AUTOCOMMIT")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


def _database(url: URL, driver: str, name: str) -> Database:
    settings = DatabaseSettings(
        database_url=url.set(drivername=f"postgresql+{driver}"),
        pool_size=1,
        max_overflow=0,
        connect_retries=0,
        application_name=name,
        app_env="test",
    )
    return Database(settings)


async def _kill_sleepers(admin: AsyncEngine, name: str, kills: int) -> asyncio.Task[list[int]]:
    """Mark `kills` sleeps, then terminate (in a task) each statement of
    application `name` while it sleeps; the task returns their pids."""
    async with admin.connect() as connection:
        await connection.execute(marker.insert(), [{"n": n} for n in range(kills)])
    return asyncio.create_task(_kill(admin, name, kills))


async def _kill(admin: AsyncEngine, name: str, kills: int) -> list[int]:
    killed: list[int] = []
    while len(killed) < kills:
        async with admin.connect() as connection:
            pid = await connection.scalar(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
                    " AND state = 'active' AND query LIKE '%pg_sleep%' AND NOT pid = ANY(:killed)"
                ),
                {"name": name, "killed": killed},
            )
            if pid is None:
                await asyncio.sleep(0.02)
                continue
            await connection.execute(text("DELETE FROM failover_marker WHERE n = :n"),
                                     {"n": len(killed)})  # fmt: skip
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killed.append(pid)
    return killed


async def _terminate_idle(admin: AsyncEngine, pid: int) -> None:
    async with admin.connect() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        gone = text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid")
        for _ in range(500):
            if await connection.scalar(gone, {"pid": pid}):
                break
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # its socket closed too


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_first_read_on_a_dead_pooled_connection_runs_again(
    scratch_url: URL, admin: AsyncEngine, driver: str
) -> None:
    name = f"failover-idle-{next(_names)}"
    async with _database(scratch_url, driver, name) as database:
        async with database.transaction() as session:
            pid = await session.scalar(select(func.pg_backend_pid()))
        assert pid is not None
        await _terminate_idle(admin, pid)
        async with database.transaction() as session:
            assert await session.scalar(select(func.pg_backend_pid())) != pid
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_first_read_whose_connection_dies_while_it_runs_runs_again(
    scratch_url: URL, admin: AsyncEngine, driver: str
) -> None:
    name = f"failover-read-{next(_names)}"
    async with _database(scratch_url, driver, name) as database:
        killer = await _kill_sleepers(admin, name, kills=1)
        async with database.transaction() as session:
            pid = await session.scalar(select(func.pg_backend_pid()).select_from(_SLEEP))
        (killed,) = await asyncio.wait_for(killer, 30)
        assert pid is not None
        assert pid != killed  # answered by a fresh connection


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_first_read_runs_again_at_most_once(
    scratch_url: URL, admin: AsyncEngine, driver: str
) -> None:
    name = f"failover-twice-{next(_names)}"
    async with _database(scratch_url, driver, name) as database:
        killer = await _kill_sleepers(admin, name, kills=2)
        with pytest.raises(DBAPIError) as caught:
            async with database.transaction() as session:
                await session.scalar(select(literal_column("1")).select_from(_SLEEP))
        assert len(await asyncio.wait_for(killer, 30)) == 2
        assert isinstance(translate_outage(caught.value), DatabaseUnavailableError)  # a 503
        async with database.transaction() as session:  # the pool recovered
            assert await session.scalar(select(func.count()).select_from(marker)) == 0


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_write_whose_connection_dies_is_never_run_again(
    scratch_url: URL, admin: AsyncEngine, driver: str
) -> None:
    name = f"failover-write-{next(_names)}"
    async with _database(scratch_url, driver, name) as database:
        killer = await _kill_sleepers(admin, name, kills=1)
        # The first statement of the unit of work, and a write: run again, it would
        # insert its row on the fresh connection (the killed one was rolled back).
        write = insert(Row).from_select(["n"], select(literal_column("1")).select_from(_SLEEP))
        with pytest.raises(DBAPIError) as caught:
            async with database.transaction() as session:
                await session.execute(write)
        await asyncio.wait_for(killer, 30)
        assert isinstance(translate_outage(caught.value), DatabaseUnavailableError)  # a 503
        async with database.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(Row)) == 0


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_read_after_the_first_statement_is_not_run_again(
    scratch_url: URL, admin: AsyncEngine, driver: str
) -> None:
    """The second read of a unit of work may depend on the first's snapshot."""
    name = f"failover-second-{next(_names)}"
    async with _database(scratch_url, driver, name) as database:

        async def two_reads() -> None:
            async with database.transaction() as session:
                await session.scalar(select(func.pg_backend_pid()))  # not killed: no sleep
                await session.scalar(select(literal_column("1")).select_from(_SLEEP))

        killer = await _kill_sleepers(admin, name, kills=1)
        with pytest.raises(DBAPIError) as caught:
            await two_reads()
        await asyncio.wait_for(killer, 30)
        assert isinstance(translate_outage(caught.value), DatabaseUnavailableError)


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_plinth_reads_read_on_a_dead_pooled_connection_runs_again(
    scratch_url: URL, admin: AsyncEngine, driver: str
) -> None:
    name = f"failover-reads-{next(_names)}"
    async with _database(scratch_url, driver, name) as database:
        reads = Reads(database, model=Row)
        async with database.transaction() as session:
            session.add(Row(n=7))
        async with database.engine.connect() as connection:
            pid = await connection.scalar(select(func.pg_backend_pid()))
        assert pid is not None
        await _terminate_idle(admin, pid)
        assert [row.n for row in await reads.list()] == [7]
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
