"""Through PgBouncer in transaction mode, on both drivers: the unit of work, lean
reads, repositories, COPY; migrations kept off the pooler; doctor sees it.

PgBouncer (``plinth_pgbouncer``: 10 server connections, transaction pooling)
stands in front of the test server; without ``DB_POOLER`` asyncpg's named
prepared statements land on server connections that never saw them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import URL, Identity, Integer, String, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from typer.testing import CliRunner

from plinth import ConfigurationError, Database, DatabaseSettings, Repository
from plinth.cli import cli
from plinth.testing import create_database, drop_database

TRANSLATOR = str(Path(__file__).parents[1] / "apps" / "translator")


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "bouncer_notes"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    text: Mapped[str] = mapped_column(String(100))
    worker: Mapped[int] = mapped_column(Integer)


class Notes(Repository[Note]):
    pass


@pytest_asyncio.fixture(loop_scope="session")
async def direct_url(plinth_server: URL) -> AsyncIterator[URL]:
    """A database with the notes table, on the server itself."""
    name = f"plinth_bouncer_{os.getpid()}"
    url = await create_database(plinth_server, name)
    settings = DatabaseSettings(database_url=url, app_env="test")
    async with Database(settings) as database, database.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    try:
        yield url
    finally:
        await drop_database(plinth_server, name)


def _settings(url: URL, driver: str, pooler: str = "pgbouncer-transaction") -> DatabaseSettings:
    return DatabaseSettings(
        database_url=url,
        driver=driver,  # type: ignore[arg-type]
        pooler=pooler,  # type: ignore[arg-type]
        app_env="test",
        pool_size=20,
        max_overflow=50,
    )


async def _work(database: Database, worker: int, rounds: int) -> int:
    """Each round: a lean read, then a unit of work that writes and reads back."""
    failures = 0
    for i in range(rounds):
        try:
            async with database.transaction() as session:
                notes = Notes(session)
                before = await notes.count(worker=worker)  # lean: outside a transaction
                await notes.create(text=f"w{worker}-{i}", worker=worker)
                assert await notes.count(worker=worker) == before + 1
        except DBAPIError:
            failures += 1
    return failures


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_units_of_work_through_transaction_pooling(
    direct_url: URL, plinth_pgbouncer: URL, driver: str
) -> None:
    url = plinth_pgbouncer.set(database=direct_url.database)
    async with Database(_settings(url, driver)) as database:
        failures = await asyncio.gather(*(_work(database, w, 10) for w in range(32)))
        assert sum(failures) == 0
        async with database.transaction() as session:
            notes = Notes(session)
            assert await notes.count() >= 320
            # COPY on asyncpg (a batched INSERT on psycopg), inside the unit of work.
            rows = [{"text": f"bulk{i}", "worker": 1000} for i in range(1000)]
            assert await notes.bulk_insert(rows) == 1000
        async with database.transaction() as session:
            assert await Notes(session).count(worker=1000) == 1000
            await Notes(session).delete_many()


async def test_without_the_setting_asyncpg_fails_behind_the_pooler(
    direct_url: URL, plinth_pgbouncer: URL
) -> None:
    """What DB_POOLER prevents: asyncpg's named statements on another server connection."""
    url = plinth_pgbouncer.set(database=direct_url.database)
    async with Database(_settings(url, "asyncpg", pooler="none")) as database:
        failures = await asyncio.gather(*(_work(database, 100 + w, 10) for w in range(32)))
    assert sum(failures) > 0


async def test_requests_per_second_through_pgbouncer_and_direct(
    direct_url: URL, plinth_pgbouncer: URL
) -> None:
    """64 concurrent clients; PgBouncer holds 10 server connections. Printed for the record."""
    figures = {}
    for name, url, pooler in (
        ("direct", direct_url, "none"),
        ("pgbouncer", plinth_pgbouncer.set(database=direct_url.database), "pgbouncer-transaction"),
    ):
        async with Database(_settings(url, "asyncpg", pooler)) as database:

            async def client(database: Database = database) -> None:
                for _ in range(20):
                    async with database.transaction() as session:
                        await session.scalar(select(func.count()).select_from(Note))

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(64)))
            figures[name] = 64 * 20 / (time.perf_counter() - started)
    print(f"\nunits of work per second, 64 clients: {figures}")
    assert all(rate > 0 for rate in figures.values())


def test_statement_timeout_is_refused_behind_the_pooler(plinth_pgbouncer: URL) -> None:
    with pytest.raises(ConfigurationError, match="ALTER ROLE app SET statement_timeout"):
        DatabaseSettings.load(
            database_url=plinth_pgbouncer, pooler="pgbouncer-transaction", statement_timeout=1000
        )


def test_migrations_need_a_direct_connection(
    plinth_pgbouncer: URL, scratch_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    through = plinth_pgbouncer.set(database=scratch_url.database)
    monkeypatch.setenv("DATABASE_URL", through.render_as_string(hide_password=False))
    monkeypatch.setenv("DB_POOLER", "pgbouncer-transaction")
    refused = runner.invoke(cli, ["db", "upgrade", "--app", TRANSLATOR])
    assert refused.exit_code == 1
    assert "set DATABASE_MIGRATION_URL to a direct connection" in refused.stderr
    assert refused.stderr.count("\n") == 1

    monkeypatch.setenv("DATABASE_MIGRATION_URL", through.render_as_string(hide_password=False))
    same = runner.invoke(cli, ["db", "upgrade", "--app", TRANSLATOR])
    assert same.exit_code == 1
    assert "must not go through the pooler" in same.stderr

    direct = scratch_url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_MIGRATION_URL", direct)
    upgraded = runner.invoke(cli, ["db", "upgrade", "--app", TRANSLATOR])
    assert upgraded.exit_code == 0, upgraded.stderr
    # The app's own view, through the pooler: doctor sees it and the schema at head.
    doctor = runner.invoke(cli, ["doctor", "--app", TRANSLATOR])
    assert "a pooler or proxy answers on port" in doctor.stdout
    assert "DB_POOLER=pgbouncer-transaction" in doctor.stdout
    assert "at 0001, head 0001" in doctor.stdout
