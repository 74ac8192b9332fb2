"""The app on Citus, sharded by tenant: its migrations, its endpoints, its row-level security.

On the ``plinth_citus`` cluster (a coordinator and two workers; skipped, naming
the build command, where Citus is not installed):

- the migrations distribute every table by ``tenant_id``, co-located with
  ``users``, with the policies and triggers on every shard, and go down and
  up again; the models match them (what ``plinth db check`` compares);
- the API tests of ``test_api.py`` run here again, against the Citus
  database (``plinth_databases`` is overridden for this module);
- every statement of every tenant-scoped endpoint is a single-shard router
  query: each is captured on the engine and EXPLAINed on the coordinator;
- the tenant of ``Database.transaction(tenant=...)`` reaches the workers, as
  a restricted role that row-level security holds; ``set_config`` alone does not.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import URL, event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pdftranslate.db import get_database
from pdftranslate.main import app
from pdftranslate.models import User
from pdftranslate.tests.test_api import (  # noqa: F401  (collected again here, on Citus)
    PDF,
    overrides,
    test_a_duplicate_google_id_is_409,
    test_a_job_for_an_unknown_user_uploads_nothing,
    test_a_tenant_cannot_see_or_touch_another_tenants_rows,
    test_an_invalid_update_is_422_and_changes_nothing,
    test_completing_a_job_sets_completed_at,
    test_creating_a_job_stores_the_pdf_the_row_and_the_status,
    test_glossary_terms,
    test_status_is_served_from_the_cache_and_invalidated_on_update,
    test_the_original_downloads_through_a_presigned_url,
    test_users_are_created_with_the_free_tier,
)
from plinth import Database, DatabaseSettings, ddl, migrations
from plinth.db.scratch import small_engine
from plinth.project import find_app
from plinth.testing.citus import CitusCluster, CitusTestDatabases

APP = find_app(Path(__file__).parents[1])
TABLES = {"users", "translations", "document_blocks", "glossaries"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plinth_databases(plinth_citus: CitusCluster) -> AsyncIterator[CitusTestDatabases]:
    """This module's app database is on the Citus cluster, migrated to head."""
    databases = CitusTestDatabases(plinth_citus)
    try:
        yield databases
    finally:
        await databases.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def citus(plinth_databases: CitusTestDatabases) -> AsyncEngine:
    """The superuser on the app's Citus database (the coordinator)."""
    return await plinth_databases.engine_for(APP)


async def _rows(engine: AsyncEngine, sql: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(text(sql))]


async def _on_every_shard(engine: AsyncEngine, table: str, query: str) -> set[str]:
    """The distinct answers of `query` (``%s`` is the shard) over `table`'s shards."""
    rows = await _rows(
        engine, f"SELECT success, result FROM run_command_on_shards('{table}', $${query}$$)"
    )
    assert all(success for success, _ in rows), rows
    return {result for _, result in rows}


async def test_the_migrations_distribute_every_table_colocated_with_users(
    citus: AsyncEngine,
) -> None:
    partitions = await _rows(
        citus, "SELECT logicalrelid::text, partmethod::text, colocationid FROM pg_dist_partition"
    )
    assert {table for table, _, _ in partitions} == TABLES
    assert {method for _, method, _ in partitions} == {"h"}  # hash-distributed
    assert len({group for _, _, group in partitions}) == 1  # co-located
    columns = await _rows(
        citus,
        "SELECT DISTINCT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition",
    )
    assert columns == [("tenant_id",)]
    for table in TABLES:
        # Created before the distribution, copied to each shard by it.
        security = "SELECT relrowsecurity::text || relforcerowsecurity::text FROM pg_class "
        assert await _on_every_shard(citus, table, f"{security} WHERE oid = '%s'::regclass") == {
            "truetrue"
        }
        policies = "SELECT count(*) FROM pg_policy WHERE polrelid = '%s'::regclass"
        assert await _on_every_shard(citus, table, policies) == {"1"}
        triggers = "SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass"
        assert await _on_every_shard(citus, table, f"{triggers} AND NOT tgisinternal") == {"1"}


async def test_the_models_match_the_migrations_on_citus(citus: AsyncEngine) -> None:
    """What ``plinth db check`` compares, on the Citus database itself."""
    async with citus.connect() as connection:
        assert await migrations.current(connection) == ("0003",)
        assert await migrations.drift(connection, APP.metadata) == []


async def test_downgrade_makes_the_tables_local_and_upgrade_distributes_them_again(
    plinth_citus: CitusCluster,
) -> None:
    url = await plinth_citus.create_database(f"pdftranslate_stairs_{uuid.uuid4().hex[:8]}")
    engine = small_engine(url)
    distributed = "SELECT count(*) FROM pg_dist_partition"
    try:
        async with engine.connect() as connection:
            await migrations.upgrade(connection, APP.migrations)
        assert await _rows(engine, distributed) == [(4,)]
        async with engine.connect() as connection:
            await migrations.downgrade(connection, APP.migrations, "0002")
        assert await _rows(engine, distributed) == [(0,)]
        async with engine.connect() as connection:
            await migrations.downgrade(connection, APP.migrations, "base")
            assert await migrations.current(connection) == ()
            await migrations.upgrade(connection, APP.migrations)
            assert await migrations.drift(connection, APP.metadata) == []
        assert await _rows(engine, distributed) == [(4,)]
    finally:
        await engine.dispose()


# -- Every tenant-scoped endpoint is a router query --------------------------------


@dataclass
class Deployment:
    url: URL
    """The app's Citus database, as a role that row-level security holds."""
    admin: AsyncEngine


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def deployment(citus: AsyncEngine) -> AsyncIterator[Deployment]:
    role = f"app_{uuid.uuid4().hex[:10]}"
    async with citus.begin() as connection:  # Citus creates the role on the workers too
        await connection.execute(
            text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE")
        )
        for grant in ddl.grant_app_role(role):
            await connection.execute(grant)
    try:
        yield Deployment(citus.url.set(username=role, password=None), citus)
    finally:
        async with citus.begin() as connection:
            await connection.execute(text(f"DROP OWNED BY {role}"))
            await connection.execute(text(f"DROP ROLE {role}"))


@dataclass
class Captured:
    """The SQL the app's engine sent, with its parameters, since the last `clear`."""

    statements: list[tuple[str, Sequence[Any]]] = field(default_factory=list)

    def record(self, _c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.statements.append((statement, tuple(parameters or ())))

    def clear(self) -> list[tuple[str, Sequence[Any]]]:
        taken, self.statements = self.statements, []
        return taken


@pytest_asyncio.fixture(loop_scope="session")
async def served(
    deployment: Deployment, services: None, enqueued: list[Any]
) -> AsyncIterator[tuple[httpx.AsyncClient, Captured]]:
    """The app on Citus as the restricted role (asyncpg), its SQL captured."""
    captured = Captured()
    async with Database(DatabaseSettings.load(database_url=deployment.url)) as database:
        event.listen(database.engine.sync_engine, "before_cursor_execute", captured.record)
        app.dependency_overrides[get_database] = lambda: database
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, captured
        finally:
            app.dependency_overrides.pop(get_database, None)


_PARAMETER = re.compile(r"\$(\d+)(?!\d)")


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def with_literals(statement: str, parameters: Sequence[Any]) -> str:
    """`statement` (asyncpg's ``$n``) with its parameters as literals: Citus prunes
    shards of a parameterised statement only when it runs, so an EXPLAIN of it
    with bound parameters shows no task count."""
    return _PARAMETER.sub(lambda match: _literal(parameters[int(match[1]) - 1]), statement)


async def shard_tasks(admin: AsyncConnection, statement: str, parameters: Sequence[Any]) -> int:
    """How many shard tasks Citus plans for the statement; 0 when it touches no
    distributed table (``set_config``), -1 for what EXPLAIN cannot plan (``DO``)."""
    if not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
        return -1
    plan = "\n".join(
        row[0]
        for row in await admin.exec_driver_sql("EXPLAIN " + with_literals(statement, parameters))
    )
    counts = [int(count) for count in re.findall(r"Task Count: (\d+)", plan)]
    if "Citus" not in plan:
        return 0
    assert counts, plan
    return max(counts)


@dataclass
class Request:
    endpoint: str
    status: int
    tasks: list[int]
    statements: list[str]


async def test_every_tenant_scoped_endpoint_runs_single_shard_router_queries(
    served: tuple[httpx.AsyncClient, Captured], deployment: Deployment
) -> None:
    http, captured = served
    tenant = {"X-Tenant-ID": str(uuid.uuid4())}
    requests: list[Request] = []
    async with deployment.admin.connect() as admin:

        async def call(endpoint: str, method: str, path: str, **options: Any) -> httpx.Response:
            captured.clear()
            headers = {**tenant, **options.pop("headers", {})}
            response = await http.request(method, path, headers=headers, **options)
            assert response.status_code < 500, (endpoint, response.text)
            taken = captured.clear()
            tasks = [await shard_tasks(admin, sql, parameters) for sql, parameters in taken]
            first_lines = [" ".join(sql.split())[:60] for sql, _ in taken]
            requests.append(Request(endpoint, response.status_code, tasks, first_lines))
            return response

        body = {"google_id": "g-citus", "email": "ada@example.com", "name": "Ada"}
        user = (await call("POST /users", "POST", "/users", json=body)).json()
        await call("POST /users (409)", "POST", "/users", json=body)
        await call("GET /users/{id}", "GET", f"/users/{user['id']}")
        job = (
            await call(
                "POST /users/{id}/translations",
                "POST",
                f"/users/{user['id']}/translations",
                params={"target_lang": "fr"},
                content=PDF,
                headers={"Content-Type": "application/pdf"},
            )
        ).json()
        await call("GET /users/{id}/translations", "GET", f"/users/{user['id']}/translations")
        await call(
            "GET /users/{id}/translations?status",
            "GET",
            f"/users/{user['id']}/translations",
            params={"status": "pending"},
        )
        await call("GET /translations/{id}", "GET", f"/translations/{job['id']}")
        patch = {"status": "processing", "progress": 40}
        await call("PATCH /translations/{id}", "PATCH", f"/translations/{job['id']}", json=patch)
        await call(
            "GET /translations/{id}/status (miss)", "GET", f"/translations/{job['id']}/status"
        )
        await call("GET /translations/{id}/original", "GET", f"/translations/{job['id']}/original")
        term = {"term": "invoice", "translation": "facture", "target_lang": "fr"}
        await call("POST /users/{id}/glossary", "POST", f"/users/{user['id']}/glossary", json=term)
        await call("GET /users/{id}/glossary", "GET", f"/users/{user['id']}/glossary")
        await call("GET /translations/{id} (404)", "GET", f"/translations/{uuid.uuid4()}")

        # The control: the same classifier on a lookup that forgets the tenant.
        everywhere = await shard_tasks(
            admin, "SELECT id FROM translations WHERE id = $1", (job["id"],)
        )
        await admin.rollback()

    width = max(len(request.endpoint) for request in requests)
    print("\nendpoint -> status, shard tasks per statement (0: no table, -1: DO)")
    for request in requests:
        print(f"{request.endpoint:<{width}}  {request.status}  {request.tasks}")
    for request in requests:
        on_tables = [tasks for tasks in request.tasks if tasks > 0]
        assert on_tables, (request.endpoint, request.statements)  # it did reach the tables
        assert on_tables == [1] * len(on_tables), (request.endpoint, request.statements)
    assert everywhere > 1


# -- Row-level security on Citus ---------------------------------------------------


async def test_the_units_tenant_reaches_the_workers_and_holds_them_to_it(
    deployment: Deployment,
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    async with Database(DatabaseSettings.load(database_url=deployment.url)) as database:
        for tenant in (a, b):
            async with database.transaction(tenant=tenant) as session:
                session.add(User(tenant_id=tenant, google_id=f"g-{tenant}", email="x@example.com"))
        async with database.transaction(tenant=a) as session:
            # No tenant filter: a query on every shard, each holding it to a.
            assert set(await session.scalars(select(User.tenant_id))) == {a}
        async with database.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(User)) == 0
        with pytest.raises(DBAPIError, match="violates row-level security policy"):
            async with database.transaction(tenant=a) as session:
                session.add(User(tenant_id=b, google_id="g-intruder", email="x@example.com"))


async def test_set_config_alone_does_not_reach_the_workers(deployment: Deployment) -> None:
    """Why the library adds ``SET LOCAL`` on Citus: the plain-PostgreSQL way, on
    its own, leaves the workers with no tenant, so they refuse the insert."""
    tenant = str(uuid.uuid4())
    engine = small_engine(deployment.url)
    insert = text("INSERT INTO users (tenant_id, google_id, email) VALUES (:t, 'g', 'e')")
    try:
        async with engine.connect() as connection:
            await connection.execute(
                text("SELECT set_config(:setting, :tenant, true)"),
                {"setting": ddl.TENANT_SETTING, "tenant": tenant},
            )
            # The coordinator has it ...
            assert (
                await connection.scalar(text("SELECT current_setting('app.tenant_id')")) == tenant
            )
            # ... the worker that holds the tenant's shard does not.
            with pytest.raises(DBAPIError, match="violates row-level security policy"):
                await connection.execute(insert, {"t": tenant})
    finally:
        await engine.dispose()
