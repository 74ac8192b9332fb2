"""Lean reads: no BEGIN for plain reads, one real transaction from the first write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import URL, Integer, String, func, insert, literal_column, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plinth import Database, DatabaseSettings
from plinth.db.lean_reads import is_plain_select, lean_reads_enabled


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(Integer, default=0)


class Statements:
    """The simple-protocol statements (BEGIN, COMMIT, ...) an asyncpg connection sends."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, record: Any) -> None:
        self.seen.append(record.query.split()[0].upper())


async def driver(session: AsyncSession) -> Any:
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


def driver_in_transaction(connection: Any) -> bool:
    if isinstance(connection, psycopg.AsyncConnection):
        return connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    return bool(connection.is_in_transaction())


async def in_transaction(session: AsyncSession) -> bool:
    return driver_in_transaction(await driver(session))


def log_statements(connection: Any) -> Statements:
    """Statements sent by `connection` from now on (empty, and unchecked, on psycopg)."""
    statements = Statements()
    if not isinstance(connection, psycopg.AsyncConnection):
        connection.add_query_logger(statements)
    return statements


@pytest.fixture(params=["postgresql+asyncpg", "postgresql+psycopg"])
async def database(request: pytest.FixtureRequest, scratch_url: URL) -> AsyncIterator[Database]:
    url = scratch_url.set(drivername=request.param)
    database = Database(DatabaseSettings.load(database_url=url))
    async with database:
        async with database.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
            await connection.execute(insert(Note).values(id=1, body="first"))
        yield database


async def test_a_read_only_unit_of_work_sends_no_begin(database: Database) -> None:
    assert lean_reads_enabled(database.engine.sync_engine)
    async with database.transaction() as session:
        statements = log_statements(await driver(session))
        note = await session.get(Note, 1)
        count = await session.scalar(select(func.count()).select_from(Note))
        assert not await in_transaction(session)
    assert note is not None
    assert count == 1
    assert statements.seen == []


async def test_the_first_write_begins_one_transaction_that_later_reads_join(
    database: Database,
) -> None:
    async with database.transaction() as session:
        await session.get(Note, 1)
        assert not await in_transaction(session)
        session.add(Note(id=2, body="second"))
        await session.flush()
        assert await in_transaction(session)
        # Read inside the transaction: sees its own uncommitted row.
        assert await session.scalar(select(func.count()).select_from(Note)) == 2
        async with database.engine.connect() as other:
            assert await other.scalar(select(func.count()).select_from(Note)) == 1
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Note)) == 2


async def test_a_failed_unit_of_work_rolls_back_everything_after_the_first_write(
    database: Database,
) -> None:
    async def handler() -> None:
        async with database.transaction() as session:
            await session.get(Note, 1)
            await session.execute(insert(Note).values(id=3, body="third"))
            await session.execute(text("UPDATE notes SET size = 5 WHERE id = 1"))
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await handler()
    async with database.transaction() as session:
        assert await session.get(Note, 3) is None
        assert (await session.get(Note, 1)).size == 0  # type: ignore[union-attr]


async def test_a_write_after_a_write_only_unit_of_work_uses_the_pooled_connection_lean_again(
    database: Database,
) -> None:
    async with database.transaction() as session:
        await session.execute(insert(Note).values(id=4, body="fourth"))
    async with database.transaction() as session:
        connection = await driver(session)
        statements = log_statements(connection)
        before = _state(connection)
        await session.get(Note, 4)
        assert not await in_transaction(session), (before, _state(connection))
    assert statements.seen == []


def _state(connection: Any) -> tuple[Any, ...]:
    """The driver connection's transaction state and autocommit, for a failure's message."""
    if isinstance(connection, psycopg.AsyncConnection):
        return (connection.info.transaction_status.name, connection.autocommit)
    return (connection.is_in_transaction(),)


async def test_a_connection_lost_during_a_lean_read_raises_the_driver_error(
    database: Database,
) -> None:
    async def handler() -> None:
        async with database.transaction() as session:
            raw = await driver(session)
            pid = (
                raw.info.backend_pid
                if isinstance(raw, psycopg.AsyncConnection)
                else raw.get_server_pid()
            )
            async with database.engine.connect() as other:
                await other.execute(select(func.pg_terminate_backend(pid)))
            await session.get(Note, 1)

    # Not SQLAlchemy's PendingRollbackError from the clean-up, which would hide it.
    with pytest.raises(DBAPIError):
        await handler()
    async with database.transaction() as session:
        assert await session.get(Note, 1) is not None


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(select(Note).where(Note.id == 1).with_for_update(), id="for-update"),
        pytest.param(text("SELECT 1"), id="raw-sql"),
        pytest.param(select(func.pg_advisory_xact_lock(42)), id="unknown-function"),
        pytest.param(select(literal_column("txid_current()")), id="literal-sql"),
    ],
)
async def test_statements_that_may_write_or_lock_run_in_the_transaction(
    database: Database, statement: Any
) -> None:
    async with database.transaction() as session:
        await session.execute(statement)
        assert await in_transaction(session)


async def test_a_savepoint_begins_the_transaction(database: Database) -> None:
    async with database.transaction() as session:
        async with session.begin_nested():
            await session.execute(insert(Note).values(id=5, body="fifth"))
        assert await in_transaction(session)
    async with database.transaction() as session:
        assert await session.get(Note, 5) is not None


async def test_server_side_cursors_run_in_a_transaction(database: Database) -> None:
    async with database.transaction() as session:
        rows = await session.stream_scalars(select(Note.id))
        assert [row async for row in rows] == [1]


async def test_an_isolation_level_turns_lean_reads_off(database: Database) -> None:
    async with database.sessionmaker() as session:
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        await session.get(Note, 1)
        assert await in_transaction(session)
        level = await session.scalar(text("SHOW transaction_isolation"))
        assert level == "repeatable read"


async def test_an_engine_wide_isolation_level_keeps_plain_transactions(scratch_url: URL) -> None:
    settings = DatabaseSettings.load(
        database_url=scratch_url, engine_options={"isolation_level": "SERIALIZABLE"}
    )
    async with Database(settings) as database:
        assert not lean_reads_enabled(database.engine.sync_engine)
        async with database.transaction() as session:
            await session.execute(select(1))
            assert await in_transaction(session)


async def test_each_transaction_of_a_connection_reads_without_begin(database: Database) -> None:
    async with database.engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        await connection.execute(insert(Note).values(id=6, body="sixth"))
        assert driver_in_transaction(raw)
        await connection.commit()
        assert await connection.scalar(select(func.count()).select_from(Note)) == 2
        assert not driver_in_transaction(raw)
        await connection.execute(insert(Note).values(id=7, body="seventh"))
        assert driver_in_transaction(raw)
        await connection.rollback()
    async with database.transaction() as session:
        assert await session.get(Note, 7) is None


async def test_a_connection_goes_back_to_the_pool_without_autocommit(database: Database) -> None:
    async with database.transaction() as session:
        await session.get(Note, 1)
        lean = (await (await session.connection()).get_raw_connection()).dbapi_connection
        assert lean is not None
        assert lean.autocommit
    # The pool's only connection, in the state raw DBAPI code expects.
    async with database.engine.connect() as connection:
        assert (await connection.get_raw_connection()).dbapi_connection is lean
        assert lean.autocommit is False


async def test_an_autocommit_connection_keeps_autocommit(database: Database) -> None:
    async with database.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        raw = (await autocommit.get_raw_connection()).driver_connection
        await autocommit.execute(select(Note))
        await autocommit.execute(insert(Note).values(id=8, body="eighth"))
        assert not driver_in_transaction(raw)
        async with database.engine.connect() as other:
            assert await other.scalar(select(Note.body).where(Note.id == 8)) == "eighth"
        await autocommit.rollback()  # nothing to roll back: the insert stays
    async with database.transaction() as session:
        assert await session.get(Note, 8) is not None


def test_plain_selects_are_told_apart_from_the_rest() -> None:
    assert is_plain_select(select(Note).where(Note.id == 1))
    assert is_plain_select(select(func.count()).select_from(Note))
    assert is_plain_select(select(func.lower(Note.body)).order_by(Note.id))
    assert is_plain_select(select(func.current_setting("server_version")))  # Database.ping
    assert is_plain_select(select(Note).where(Note.id.in_(select(Note.id).scalar_subquery())))
    assert not is_plain_select(select(Note).with_for_update(read=True))
    assert not is_plain_select(select(Note).where(Note.id.in_(select(Note.id).with_for_update())))
    written = insert(Note).values(id=9, body="x").returning(Note.id).cte("written")
    assert not is_plain_select(select(written.c.id))
    assert not is_plain_select(select(func.nextval("seq")))
    assert not is_plain_select(select(Note).where(text("size > 1")))
    assert not is_plain_select(insert(Note).values(id=9, body="x"))
    assert not is_plain_select(text("SELECT 1"))
