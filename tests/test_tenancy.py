"""Row-level security for tenants, enforced by PostgreSQL, with lean reads on.

Each test runs as the roles of a real deployment: an owner (NOLOGIN) that
owns the table, as migrations would, and a LOGIN role that is neither
superuser, nor owner, nor BYPASSRLS, through a started `Database` (its pool,
lean reads on), on both drivers. Rows are seeded by the superuser, which row
security never applies to.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import (
    URL,
    Column,
    Integer,
    String,
    Table,
    Uuid,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plinth import Database, DatabaseSettings, Repository, ddl, tenant_header
from plinth.db.lean_reads import lean_reads_enabled
from plinth.db.scratch import small_engine
from plinth.db.tenancy import bind_tenant, bound_tenant, tenant_value
from plinth.migrations import snapshot

A, B = uuid.UUID(int=0xA), uuid.UUID(int=0xB)


class Base(DeclarativeBase):
    metadata = ddl.new_metadata()


class Doc(Base):
    __tablename__ = "docs"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID]
    body: Mapped[str] = mapped_column(String(50))


ddl.tenant_isolation(Doc)


def _wire() -> Any:
    """``benchmarks/wire.py``: counts round trips (ReadyForQuery messages) on the wire."""
    path = Path(__file__).parents[1] / "benchmarks" / "wire.py"
    spec = importlib.util.spec_from_file_location("_plinth_bench_wire", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Roles:
    owner: str
    app: str
    admin: URL
    """The superuser on the scratch database."""

    def app_url(self, driver: str, host: str | None = None, port: int | None = None) -> URL:
        url = self.admin.set(drivername=driver, username=self.app, password=None)
        return url.set(host=host, port=port) if host is not None else url


async def _execute(connection: AsyncConnection, *statements: Any) -> None:
    for statement in statements:
        await connection.execute(statement if not isinstance(statement, str) else text(statement))


@pytest.fixture
async def roles(scratch_url: URL) -> AsyncIterator[Roles]:
    """The table `docs` owned by a NOLOGIN owner, two rows per tenant, and an app role."""
    tag = uuid.uuid4().hex[:10]
    owner, app = f"plinth_owner_{tag}", f"plinth_app_{tag}"
    engine = small_engine(scratch_url)
    try:
        async with engine.begin() as connection:
            await _execute(
                connection,
                f"CREATE ROLE {owner} NOLOGIN",
                f"CREATE ROLE {app} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
                f'GRANT CONNECT ON DATABASE "{scratch_url.database}" TO {app}',
                f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}",
                f"SET LOCAL ROLE {owner}",  # the migrations' role: it owns what it creates
            )
            await connection.run_sync(Base.metadata.create_all)
            await _execute(connection, *ddl.grant_app_role(app, owner=owner), "RESET ROLE")
            await connection.execute(
                insert(Doc),
                [
                    {"id": 1, "tenant_id": A, "body": "a1"},
                    {"id": 2, "tenant_id": A, "body": "a2"},
                    {"id": 3, "tenant_id": B, "body": "b1"},
                    {"id": 4, "tenant_id": B, "body": "b2"},
                ],
            )
        yield Roles(owner, app, scratch_url)
    finally:
        async with engine.begin() as connection:
            await _execute(connection, f"DROP OWNED BY {app}", f"DROP OWNED BY {owner}")
            await _execute(connection, f"DROP ROLE {owner}", f"DROP ROLE {app}")
        await engine.dispose()


@pytest.fixture(params=["postgresql+asyncpg", "postgresql+psycopg"])
async def database(request: pytest.FixtureRequest, roles: Roles) -> AsyncIterator[Database]:
    """The app's `Database`, as the restricted role; one pooled connection, reused."""
    url = roles.app_url(request.param)
    settings = DatabaseSettings.load(database_url=url, pool_size=1, max_overflow=0)
    async with Database(settings) as database:
        assert lean_reads_enabled(database.engine.sync_engine)
        yield database


async def bodies(session: AsyncSession) -> list[str]:
    """Every row's body, with no tenant filter at all."""
    return list(await session.scalars(select(Doc.body).order_by(Doc.id)))


async def test_the_app_role_is_neither_superuser_owner_nor_bypassrls(
    database: Database, roles: Roles
) -> None:
    async with database.transaction() as session:
        row = (
            await session.execute(
                text(
                    "SELECT r.rolsuper, r.rolbypassrls, c.relowner = r.oid "
                    "FROM pg_roles r, pg_class c WHERE r.rolname = current_user "
                    "AND c.relname = 'docs'"
                )
            )
        ).one()
    assert tuple(row) == (False, False, False)


async def test_a_query_without_a_tenant_filter_sees_only_its_tenants_rows(
    database: Database,
) -> None:
    async with database.transaction(tenant=A) as session:
        assert await bodies(session) == ["a1", "a2"]
        assert await session.scalar(select(func.count()).select_from(Doc)) == 2
        assert await session.get(Doc, 3) is None
    async with database.transaction(tenant=B) as session:
        assert await bodies(session) == ["b1", "b2"]


async def test_with_no_tenant_a_query_sees_no_rows(database: Database) -> None:
    # On a fresh connection current_setting(..., true) is NULL.
    async with database.transaction() as session:
        assert await bodies(session) == []
    async with database.transaction(tenant=A) as session:
        assert await bodies(session) == ["a1", "a2"]
    # The same pooled connection, after a tenant's transaction ended: the
    # setting is '' now, not NULL (the policy's NULLIF makes it no tenant).
    async with database.transaction() as session:
        assert await bodies(session) == []
        assert await session.scalar(select(func.current_setting(ddl.TENANT_SETTING, True))) == ""
    # ... and a lean read (autocommit) never sees a transaction-local tenant.


async def test_a_lean_read_would_not_see_a_transaction_local_tenant(database: Database) -> None:
    """Why the tenant begins the transaction: set in autocommit, it is gone at once."""
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(
            text("SELECT set_config(:name, :tenant, true)"),
            {"name": ddl.TENANT_SETTING, "tenant": str(A)},
        )
        assert (await connection.scalars(select(Doc.body))).all() == []


async def test_the_tenant_begins_the_transaction_so_reads_join_it(database: Database) -> None:
    async with database.transaction() as session:
        await bodies(session)
        lean = (await (await session.connection()).get_raw_connection()).dbapi_connection
        assert lean is not None
        assert lean.autocommit
    async with database.transaction(tenant=A) as session:
        assert bound_tenant(session) == str(A)
        await bodies(session)
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        # In a transaction (on psycopg, begun with set_config while in autocommit).
        if isinstance(raw, psycopg.AsyncConnection):
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        else:
            assert raw.is_in_transaction()
        tenant = await session.scalar(select(func.current_setting(ddl.TENANT_SETTING)))
        assert tenant == str(A)


async def test_the_tenant_is_set_again_after_a_commit_inside_the_unit_of_work(
    database: Database,
) -> None:
    async with database.transaction(tenant=A) as session:
        session.add(Doc(id=5, tenant_id=A, body="a3"))
        await session.commit()
        assert await bodies(session) == ["a1", "a2", "a3"]


async def as_tenant(
    database: Database, tenant: uuid.UUID, *statements: str, **parameters: Any
) -> None:
    """Run raw SQL statements in a unit of work of `tenant`."""
    async with database.transaction(tenant=tenant) as session:
        for statement in statements:
            await session.execute(text(statement), parameters)


async def test_raw_sql_on_the_apps_connection_cannot_touch_another_tenants_rows(
    database: Database, roles: Roles
) -> None:
    async with database.transaction(tenant=A) as session:
        where_b = {"b": B}
        seen = await session.scalar(text("SELECT count(*) FROM docs WHERE tenant_id = :b"), where_b)
        assert seen == 0
        updated = await session.execute(
            text("UPDATE docs SET body = 'stolen' WHERE tenant_id = :b"), where_b
        )
        assert updated.rowcount == 0  # type: ignore[attr-defined]
        deleted = await session.execute(text("DELETE FROM docs WHERE tenant_id = :b"), where_b)
        assert deleted.rowcount == 0  # type: ignore[attr-defined]
        orm_update = await session.execute(update(Doc).where(Doc.id == 3).values(body="stolen"))
        assert orm_update.rowcount == 0  # type: ignore[attr-defined]
        orm_delete = await session.execute(delete(Doc).where(Doc.id == 4))
        assert orm_delete.rowcount == 0  # type: ignore[attr-defined]
    # WITH CHECK: no row may be written into another tenant, nor moved there.
    for statement in (
        "INSERT INTO docs (id, tenant_id, body) VALUES (9, :b, 'planted')",
        "UPDATE docs SET tenant_id = :b WHERE id = 1",
    ):
        with pytest.raises(DBAPIError, match="violates row-level security policy"):
            await as_tenant(database, A, statement, b=B)
    # Nor can the role switch row security off, or undo the policy.
    for statement in (
        "SET LOCAL row_security = off",
        "ALTER TABLE docs NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON docs",
    ):
        with pytest.raises(DBAPIError, match=r"row-level security|must be owner"):
            await as_tenant(database, A, statement, "SELECT count(*) FROM docs")
    engine = small_engine(roles.admin)  # the superuser: row security does not apply
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(Doc.id, Doc.body).order_by(Doc.id))
            assert rows.all() == [(1, "a1"), (2, "a2"), (3, "b1"), (4, "b2")]
    finally:
        await engine.dispose()


class DocOut(BaseModel):
    id: int
    tenant_id: uuid.UUID
    body: str


class Docs(Repository[Doc]):
    pass


async def test_a_create_into_a_schema_runs_as_the_tenant(database: Database) -> None:
    """`Repository.create(into=)` runs Core on the session's connection: the tenant
    is set first, and the policy's WITH CHECK refuses another tenant's row."""
    async with database.transaction(tenant=A) as session:
        made = await Docs(session).create(id=9, tenant_id=A, body="a3", into=DocOut)
        assert made == DocOut(id=9, tenant_id=A, body="a3")

    async def plant() -> None:
        async with database.transaction(tenant=A) as session:
            await Docs(session).create(id=10, tenant_id=B, body="planted", into=DocOut)

    with pytest.raises(DBAPIError, match="violates row-level security policy"):
        await plant()
    async with database.transaction(tenant=A) as session:
        assert await bodies(session) == ["a1", "a2", "a3"]


async def test_force_holds_the_owner_to_the_policy_too(roles: Roles) -> None:
    """Without FORCE the table's owner sees every tenant's rows: the test can fail."""
    engine = small_engine(roles.admin)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"SET LOCAL ROLE {roles.owner}"))
            assert (await connection.scalars(select(Doc.body))).all() == []
            await connection.execute(
                text("SELECT set_config(:name, :tenant, true)"),
                {"name": ddl.TENANT_SETTING, "tenant": str(B)},
            )
            assert sorted((await connection.scalars(select(Doc.body))).all()) == ["b1", "b2"]
            await connection.execute(text("ALTER TABLE docs NO FORCE ROW LEVEL SECURITY"))
            assert len((await connection.scalars(select(Doc.body))).all()) == 4
            await connection.rollback()
    finally:
        await engine.dispose()


def test_a_tenant_must_name_something() -> None:
    for bad in (None, "", "  ", "a\x00b", True):
        with pytest.raises(ValueError, match="tenant"):
            tenant_value(bad)
    assert tenant_value(A) == str(A)


async def test_a_tenant_is_bound_before_the_first_statement(database: Database) -> None:
    async with database.transaction() as session:
        await session.execute(text("SELECT 1"))
        with pytest.raises(ValueError, match="before the session's first statement"):
            bind_tenant(session, A)


def test_the_policy_ddl_is_one_statement_per_step() -> None:
    statements = [str(d.statement) for d in ddl.enable_tenant_isolation("docs")]
    condition = "\"tenant_id\" = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
    assert statements == [
        'ALTER TABLE "docs" ENABLE ROW LEVEL SECURITY',
        'ALTER TABLE "docs" FORCE ROW LEVEL SECURITY',
        f'CREATE POLICY tenant_isolation ON "docs" USING ({condition}) WITH CHECK ({condition})',
    ]
    with pytest.raises(ValueError, match="custom setting"):
        ddl.enable_tenant_isolation("docs", setting="x'; DROP TABLE docs; --")
    with pytest.raises(ValueError, match="no column"):
        ddl.tenant_isolation(Doc, "tenant")
    assert "public.docs.tenant_isolation" not in Base.metadata.info["plinth.ddl"]["policies"]
    assert "docs.tenant_isolation" in Base.metadata.info["plinth.ddl"]["policies"]


async def test_create_all_and_the_migration_statements_build_the_same_catalog(
    plinth_each_server: URL,
) -> None:
    """On PostgreSQL 18 and 15; and the snapshot sees a missing FORCE or policy."""
    from plinth.db.scratch import scratch_database

    # The table as a migration's op.create_table makes it: no policy attached.
    plain = Table(
        "docs",
        ddl.new_metadata(),
        Column("id", Integer, primary_key=True),
        Column("tenant_id", Uuid, nullable=False),
        Column("body", String(50), nullable=False),
    )

    async def build(migration: list[Any] | None) -> snapshot.Snapshot:
        async with scratch_database(plinth_each_server, "rls") as engine:
            async with engine.begin() as connection:
                if migration is None:
                    await connection.run_sync(Base.metadata.create_all)
                else:
                    await connection.run_sync(plain.create)
                    for statement in migration:
                        await connection.execute(statement)
            async with engine.connect() as connection:
                return await snapshot.take(connection)

    models = await build(None)
    assert models.objects["row security"] == {"public.docs": "ENABLE FORCE"}
    assert list(models.objects["policy"]) == ["public.docs.tenant_isolation"]
    assert models.diff(await build(ddl.enable_tenant_isolation("docs"))) == []
    without_force = [s for s in ddl.enable_tenant_isolation("docs") if "FORCE" not in str(s)]
    assert models.diff(await build(without_force)) == [
        "row security public.docs differs:\n    before:  ENABLE FORCE\n    after: ENABLE"
    ]
    other_setting = ddl.enable_tenant_isolation("docs", setting="app.tenant")
    assert (
        "policy public.docs.tenant_isolation differs" in models.diff(await build(other_setting))[0]
    )


async def test_round_trips_of_a_tenant_unit_of_work(database: Database, roles: Roles) -> None:
    """Counted on the wire: a lean read is 1; with a tenant, BEGIN + set_config + COMMIT more
    (on psycopg BEGIN travels with set_config: one less)."""
    wire = _wire()
    counter = wire.RoundTripCounter()
    admin = roles.admin
    assert admin.host is not None
    assert admin.port is not None
    driver = database.engine.url.drivername
    async with wire.counting_proxy(admin.host, admin.port, counter) as (host, port):
        url = roles.app_url(driver, host, port)
        settings = DatabaseSettings.load(database_url=url, pool_size=1, max_overflow=0)
        async with Database(settings) as counted:

            async def trips(tenant: uuid.UUID | None, write: bool = False) -> int:
                counter.reset()
                async with counted.transaction(tenant=tenant) as session:
                    if write:
                        await session.execute(update(Doc).where(Doc.id == 1).values(body=Doc.body))
                    else:
                        await session.get(Doc, 1)
                return int(counter.count)

            for tenant in (None, A):  # warm up: prepared statements, type introspection
                await trips(tenant)
                await trips(tenant, write=True)
            measured = {
                "read": await trips(None),
                "tenant read": await trips(A),
                "write": await trips(None, write=True),
                "tenant write": await trips(A, write=True),
            }
    if driver == "postgresql+psycopg":  # BEGIN goes with the first write (pipelined_begin)
        assert measured == {"read": 1, "tenant read": 3, "write": 2, "tenant write": 3}
    else:
        assert measured == {"read": 1, "tenant read": 4, "write": 3, "tenant write": 4}


@pytest.fixture
def tenant_app(database: Database) -> FastAPI:
    app = FastAPI()
    Session = database.tenant_depends(tenant_header())

    @app.get("/docs-bodies")
    async def docs_bodies(session: AsyncSession = Session) -> list[str]:
        return await bodies(session)

    return app


@pytest.fixture
def http(tenant_app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=tenant_app), base_url="http://t")


async def test_the_fastapi_dependency_binds_the_header_tenant(http: httpx.AsyncClient) -> None:
    async with http:
        response = await http.get("/docs-bodies", headers={"X-Tenant-ID": str(B)})
        assert response.json() == ["b1", "b2"]
        for headers in ({}, {"X-Tenant-ID": "not-a-uuid"}, {"X-Tenant-ID": ""}):
            refused = await http.get("/docs-bodies", headers=headers)
            assert refused.status_code == 422, headers
            assert refused.json()["detail"][0]["loc"] == ["header", "X-Tenant-ID"]
