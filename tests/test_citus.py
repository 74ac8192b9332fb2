"""Citus, sharded by tenant: the same schema on plain PostgreSQL and on a cluster.

`plinth.ddl.distributed` / `reference_table` make ``create_all`` distribute
tables where the ``citus`` extension exists and do nothing elsewhere; a
tenant-scoped query is then a single-shard router query.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy import (
    URL,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plinth import Conflict, Database, DatabaseSettings, Repository, ddl
from plinth.driver_errors import translate_dbapi_error
from plinth.testing import create_database, drop_database
from plinth.testing.citus import CitusCluster


class Base(DeclarativeBase):
    metadata = ddl.new_metadata()


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class Account(ddl.Timestamps, Base):
    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(100))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))


class Note(Base):
    __tablename__ = "notes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    text: Mapped[str] = mapped_column(String(200))


ddl.reference_table(Plan)
ddl.updated_at_trigger(Account)
ddl.distributed(Account, "tenant_id")
ddl.distributed(Note, "tenant_id", colocate_with="accounts")


class Notes(Repository[Note]):
    pass


@pytest_asyncio.fixture(loop_scope="session")
async def citus_url(plinth_citus: CitusCluster) -> AsyncIterator[URL]:
    url = await plinth_citus.create_database(f"plinth_citus_{os.getpid()}")
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(text("INSERT INTO plans VALUES (1, 'free')"))
    await engine.dispose()
    yield url


async def _rows(engine: AsyncEngine, sql: str) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(text(sql))]


async def test_create_all_distributes_and_colocates(citus_url: URL) -> None:
    engine = create_async_engine(citus_url)
    try:
        tables = dict(
            await _rows(
                engine,
                "SELECT logicalrelid::text, partmethod::text FROM pg_dist_partition ORDER BY 1",
            )
        )
        assert tables == {"accounts": "h", "notes": "h", "plans": "n"}
        groups = await _rows(
            engine,
            "SELECT count(DISTINCT colocationid) FROM pg_dist_partition "
            "WHERE logicalrelid IN ('accounts'::regclass, 'notes'::regclass)",
        )
        assert groups == [(1,)]
    finally:
        await engine.dispose()


async def test_the_same_schema_builds_on_plain_postgresql(plinth_server: URL) -> None:
    url = await create_database(plinth_server, f"plinth_not_citus_{os.getpid()}")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        tables = await _rows(engine, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == [(3,)]
    finally:
        await engine.dispose()
        await drop_database(plinth_server, url.database or "")


async def test_tenant_scoped_work_is_a_router_query(citus_url: URL) -> None:
    tenant = uuid.uuid4()
    settings = DatabaseSettings(database_url=citus_url, app_env="test", connect_retries=0)
    async with Database(settings) as database:
        async with database.transaction() as session:
            account = Account(tenant_id=tenant, email="a@x.test", plan_id=1)
            session.add(account)
            await session.flush()
            notes = Notes(session)
            await notes.create(tenant_id=tenant, account_id=account.id, text="first")
            await notes.create(tenant_id=tenant, account_id=account.id, text="second")
        async with database.transaction() as session:
            assert [
                n.text for n in await Notes(session).list(tenant_id=tenant, order_by="text")
            ] == [
                "first",
                "second",
            ]
            # The updated_at trigger runs on the distributed table.
            account = (
                await session.scalars(select(Account).where(Account.tenant_id == tenant))
            ).one()
            before = account.updated_at
            account.email = "b@x.test"
            await session.flush()
            await session.refresh(account)
            assert account.updated_at >= before
        async with database.engine.connect() as connection:
            for query in (
                f"SELECT * FROM notes WHERE tenant_id = '{tenant}'",
                "SELECT n.text, a.email, p.name FROM notes n JOIN accounts a "
                "ON a.tenant_id = n.tenant_id AND a.id = n.account_id JOIN plans p "
                f"ON p.id = a.plan_id WHERE n.tenant_id = '{tenant}'",
                f"UPDATE notes SET text = 'x' WHERE tenant_id = '{tenant}'",
            ):
                plan = "\n".join(
                    row[0] for row in await connection.execute(text(f"EXPLAIN {query}"))
                )
                assert "Task Count: 1" in plan, plan
            everything = "\n".join(
                row[0] for row in await connection.execute(text("EXPLAIN SELECT * FROM notes"))
            )
            assert "Task Count: 1" not in everything  # the control: all shards
            await connection.rollback()


async def test_a_violation_on_a_worker_names_the_tables_constraint(citus_url: URL) -> None:
    """Citus relays a worker's error without its constraint field, naming the shard's
    constraint (``uq_accounts_tenant_id_email_102008``): the 409 still names the table's."""
    tenant = uuid.uuid4()
    for driver in ("postgresql+asyncpg", "postgresql+psycopg"):
        settings = DatabaseSettings(
            database_url=citus_url.set(drivername=driver), app_env="test", connect_retries=0
        )
        async with Database(settings) as database:
            for attempt in range(2):
                email = f"{driver}@x.test"
                try:
                    async with database.transaction() as session:
                        session.add(Account(tenant_id=tenant, email=email, plan_id=1))
                except IntegrityError as error:
                    assert attempt == 1
                    conflict = translate_dbapi_error(error)  # what the 409 handler answers with
                    assert isinstance(conflict, Conflict), driver
                    assert conflict.constraint == "uq_accounts_tenant_id_email", driver
                else:
                    assert attempt == 0, f"{driver}: the duplicate was accepted"
