"""Benchmark 5: what isolating one trivial test from the next costs.

The schema is the reference app's (``apps/translator``: three tables with
their checks, indexes, triggers and full-text indexes), and every method runs
the same trivial test (insert a document, count the documents). The methods
differ only in how the test is isolated:

- **Rb**: a transaction on a raw asyncpg connection, rolled back: the floor;
- **B**: the test's `AsyncSession` joined to a bare transaction on a pooled
  connection, rolled back (``BEGIN ... ROLLBACK``, no savepoint);
- **P**: Plinth's pytest plugin, the sequence of its ``db_connection`` and
  ``db_session`` fixtures (``src/plinth/testing/plugin.py``): an outer transaction on
  a pooled connection, the app's `Database` bound to it, an `AsyncSession`
  joining it through a savepoint, the outer transaction rolled back;
- **C**: ``metadata.create_all`` before and ``drop_all`` after each test;
- **T**: a fresh database cloned from a template per test
  (``CREATE DATABASE ... TEMPLATE``, a new connection, ``DROP DATABASE``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import URL, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from benchmarks.harness import Case, Runner, Target
from plinth import DatabaseSettings
from plinth.db.engine import engine_arguments
from plinth.project import AppSpec, find_app

__all__ = ["IsolationBench", "isolation_bench"]

APP = Path(__file__).parents[1] / "apps" / "translator"
DOCUMENT = {
    "content": "Hello",
    "file_name": "a.txt",
    "file_size": 5,
    "source_language": "en",
    "session_id": "s",
}


def _test_engine(url: URL) -> AsyncEngine:
    # Built as plinth.testing builds the engines of its test databases.
    settings = DatabaseSettings(database_url=url, app_env="test", pool_size=2, max_overflow=2)
    bound_url, options = engine_arguments(settings, url)
    return create_async_engine(bound_url, **options)


def _dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _autocommit(engine: AsyncEngine, *statements: str) -> None:
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        for statement in statements:
            await connection.execute(text(statement))


class IsolationBench:
    """Scratch databases with the app's schema on the server at `server`."""

    def __init__(self, server: URL, prefix: str, app: AppSpec | None = None) -> None:
        self.server = server
        self.app = app if app is not None else find_app(APP)
        self.metadata = self.app.metadata
        self.documents: Table = self.metadata.tables["documents"]
        self.admin = create_async_engine(server, poolclass=NullPool)
        self.tx_db, self.empty_db, self.template_db = (
            f"{prefix}_{kind}" for kind in ("tx", "empty", "template")
        )
        self.prefix = prefix
        self.clones = 0

    @property
    def databases(self) -> tuple[str, ...]:
        return (self.tx_db, self.empty_db, self.template_db)

    async def start(self) -> None:
        await _autocommit(
            self.admin,
            *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.databases),
            *(f'CREATE DATABASE "{name}"' for name in self.databases),
        )
        for name in (self.tx_db, self.template_db):
            engine = create_async_engine(self.server.set(database=name), poolclass=NullPool)
            async with engine.begin() as connection:
                await connection.run_sync(self.metadata.create_all)
            await engine.dispose()
        self.tx_engine = _test_engine(self.server.set(database=self.tx_db))
        self.empty_engine = _test_engine(self.server.set(database=self.empty_db))
        self.raw = await asyncpg.connect(_dsn(self.server.set(database=self.tx_db)))
        # The app's Database, bound as the plugin binds it; never started.
        self.database = self.app.database

    async def close(self) -> None:
        await self.raw.close()
        await self.tx_engine.dispose()
        await self.empty_engine.dispose()
        await _autocommit(
            self.admin,
            *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.databases),
        )
        await self.admin.dispose()

    async def _body(self, executor: AsyncConnection | AsyncSession) -> None:
        await executor.execute(insert(self.documents).values(**DOCUMENT))
        count = await executor.scalar(select(func.count()).select_from(self.documents))
        if not count:
            raise AssertionError("the inserted row is not there")

    async def raw_transaction(self) -> None:
        transaction = self.raw.transaction()
        await transaction.start()
        await self.raw.execute(
            "INSERT INTO documents (content, file_name, file_size, source_language, session_id)"
            " VALUES ($1, $2, $3, $4, $5)",
            *DOCUMENT.values(),
        )
        if not await self.raw.fetchval("SELECT count(*) FROM documents"):
            raise AssertionError("the inserted row is not there")
        await transaction.rollback()

    async def bare(self) -> None:
        async with self.tx_engine.connect() as connection:
            transaction = await connection.begin()
            try:
                async with AsyncSession(bind=connection, expire_on_commit=False) as session:
                    await self._body(session)
            finally:
                await transaction.rollback()

    async def plugin(self) -> None:
        # plinth.testing: db_connection, then db_session.
        async with self.tx_engine.connect() as connection:
            transaction = await connection.begin()
            try:
                async with (
                    self.database.bind(connection),
                    AsyncSession(
                        bind=connection,
                        expire_on_commit=False,
                        join_transaction_mode="create_savepoint",
                    ) as session,
                ):
                    await self._body(session)
            finally:
                await transaction.rollback()

    async def create_drop(self) -> None:
        async with self.empty_engine.begin() as connection:
            await connection.run_sync(self.metadata.create_all)
        try:
            async with AsyncSession(self.empty_engine, expire_on_commit=False) as session:
                await self._body(session)
                await session.commit()
        finally:
            async with self.empty_engine.begin() as connection:
                await connection.run_sync(self.metadata.drop_all)

    async def clone(self) -> None:
        self.clones += 1
        name = f"{self.prefix}_clone{self.clones}"
        await _autocommit(self.admin, f'CREATE DATABASE "{name}" TEMPLATE "{self.template_db}"')
        engine = _test_engine(self.server.set(database=name))
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                await self._body(session)
                await session.commit()
        finally:
            await engine.dispose()
            await _autocommit(self.admin, f'DROP DATABASE "{name}"')

    def case(self, tests: int, slow_tests: int) -> Case:
        def repeat(test: Callable[[], Awaitable[None]], cap: int | None = None) -> Runner:
            # The slow methods run fewer tests per timed run (`cap`); every
            # runner reports how many it ran.
            async def run(n: int) -> float:
                count = n if cap is None else min(n, cap)
                for _ in range(count):
                    await test()
                return float(count)

            return run

        runners: dict[str, Runner] = {
            "Rb": repeat(self.raw_transaction),
            "B": repeat(self.bare),
            "P": repeat(self.plugin),
            "C": repeat(self.create_drop, slow_tests),
            "T": repeat(self.clone, slow_tests),
        }
        return Case(
            "isolation",
            f"per-test isolation ({tests} trivial tests per run; C and T {slow_tests})",
            "test",
            tests,
            runners,
            warmup=2,
            ratios=(("P", "B"), ("P", "Rb"), ("C", "P"), ("T", "P")),
            targets=(Target("P", "B", "<=", 2), Target("C", "P", ">=", 40)),
            notes=(
                "schema: apps/translator; each test inserts a document and counts the documents",
                "Rb: raw asyncpg BEGIN/ROLLBACK; B: the same SQLAlchemy session in a bare "
                "BEGIN/ROLLBACK; P: the plugin (outer transaction, the app's Database bound, "
                "savepoint session); C: create_all/drop_all per test; T: template clone per test",
            ),
        )


@asynccontextmanager
async def isolation_bench(server: URL, prefix: str) -> AsyncIterator[IsolationBench]:
    bench = IsolationBench(server, prefix)
    await bench.start()
    try:
        yield bench
    finally:
        await bench.close()
