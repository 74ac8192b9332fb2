"""Tenant isolation enforced by PostgreSQL: the app as a restricted role, lean reads on.

As deployed: the migrations run as an owner role (NOLOGIN here, through ``SET
ROLE``), and the app connects as a LOGIN role that is neither superuser, nor
owner, nor BYPASSRLS, granted with `plinth.ddl.grant_app_role`. The app's
`Database` is started on that role (its own pool, lean reads on), on each
driver, and the app's routes use it; Redis and S3 are the test ones.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import URL, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from pdftranslate.db import get_database
from pdftranslate.main import app
from pdftranslate.models import Glossary, Translation, User
from plinth import Database, DatabaseSettings, ddl, migrations
from plinth.db.lean_reads import lean_reads_enabled
from plinth.db.scratch import create_database, drop_database, small_engine
from plinth.db.security import inspect_connection

MIGRATIONS = Path(__file__).parents[1] / "migrations"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass
class Deployment:
    database: Database
    """The app's database, as the restricted role."""
    admin: AsyncEngine
    """The superuser, on the same database."""
    owner: str


@pytest_asyncio.fixture(
    scope="module", loop_scope="session", params=["postgresql+asyncpg", "postgresql+psycopg"]
)
async def deployment(
    request: pytest.FixtureRequest, plinth_server: URL
) -> AsyncIterator[Deployment]:
    tag = uuid.uuid4().hex[:10]
    name, owner, role = f"pdftranslate_rls_{os.getpid()}_{tag}", f"owner_{tag}", f"app_{tag}"
    url = await create_database(plinth_server, name)
    admin = small_engine(url)
    try:
        async with admin.begin() as connection:
            for statement in (
                f"CREATE ROLE {owner} NOLOGIN",
                f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
                f'GRANT CONNECT ON DATABASE "{name}" TO {role}',
                f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}",
            ):
                await connection.execute(text(statement))
        async with admin.connect() as connection:
            await connection.execute(text(f"SET ROLE {owner}"))
            await connection.commit()
            await migrations.upgrade(connection, MIGRATIONS)
            for grant in ddl.grant_app_role(role, owner=owner):
                await connection.execute(grant)
            await connection.execute(text("RESET ROLE"))
            await connection.commit()
        app_url = url.set(drivername=request.param, username=role, password=None)
        async with Database(DatabaseSettings.load(database_url=app_url)) as database:
            assert lean_reads_enabled(database.engine.sync_engine)
            async with database.engine.connect() as connection:
                security = await inspect_connection(connection)
            assert (security.role, security.excess_privileges) == (role, [])
            yield Deployment(database, admin, owner)
    finally:
        await admin.dispose()
        await drop_database(plinth_server, name)
        cleanup = small_engine(plinth_server)
        async with cleanup.begin() as connection:
            await connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
            await connection.execute(text(f"DROP ROLE IF EXISTS {owner}"))
        await cleanup.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def http(deployment: Deployment, services: None) -> AsyncIterator[httpx.AsyncClient]:
    """The app, its routes on the restricted role's database."""
    app.dependency_overrides[get_database] = lambda: deployment.database
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        app.dependency_overrides.clear()


@dataclass
class Tenant:
    id: uuid.UUID
    user: str
    translation: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Tenant-ID": str(self.id)}


async def tenant_with_data(http: httpx.AsyncClient) -> Tenant:
    """A new tenant with a user, an uploaded translation and a glossary term."""
    headers = {"X-Tenant-ID": str(uuid.uuid4())}
    body = {"google_id": f"g-{uuid.uuid4().hex[:10]}", "email": "ada@example.com", "name": "Ada"}
    user = await http.post("/users", json=body, headers=headers)
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    job = await http.post(
        f"/users/{user_id}/translations",
        params={"target_lang": "fr"},
        content=PDF,
        headers={**headers, "Content-Type": "application/pdf"},
    )
    assert job.status_code == 201, job.text
    term = {"term": "invoice", "translation": "facture", "target_lang": "fr"}
    added = await http.post(f"/users/{user_id}/glossary", json=term, headers=headers)
    assert added.status_code == 201, added.text
    return Tenant(uuid.UUID(headers["X-Tenant-ID"]), user_id, job.json()["id"])


async def test_another_tenants_rows_are_404_through_the_api(http: httpx.AsyncClient) -> None:
    a, b = await tenant_with_data(http), await tenant_with_data(http)
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/users/{a.user}", {}),
        ("GET", f"/users/{a.user}/translations", {}),
        ("GET", f"/translations/{a.translation}", {}),
        ("GET", f"/translations/{a.translation}/status", {}),
        ("GET", f"/translations/{a.translation}/original", {}),
        ("PATCH", f"/translations/{a.translation}", {"json": {"progress": 50}}),
        ("GET", f"/users/{a.user}/glossary", {}),
        ("POST", f"/users/{a.user}/glossary", {"json": {"term": "x", "translation": "y",
                                                          "target_lang": "fr"}}),
    ]  # fmt: skip
    for method, path, options in requests:
        response = await http.request(method, path, headers=b.headers, **options)
        if path.endswith("/translations") and method == "GET":
            assert response.json() == [], path  # a list: empty, never A's jobs
        else:
            assert response.status_code == 404, (method, path, response.text)
    mine = await http.get(f"/translations/{a.translation}", headers=a.headers)
    assert mine.status_code == 200
    assert mine.json()["progress"] == 0  # B's PATCH changed nothing


async def test_a_query_without_a_tenant_filter_sees_only_its_tenants_rows(
    http: httpx.AsyncClient, deployment: Deployment
) -> None:
    a, b = await tenant_with_data(http), await tenant_with_data(http)
    for tenant in (a, b):
        async with deployment.database.transaction(tenant=tenant.id) as session:
            for model in (User, Translation, Glossary):
                tenants = set(await session.scalars(select(model.tenant_id)))
                assert tenants == {tenant.id}, model.__tablename__
    async with deployment.database.transaction() as session:  # no tenant: no rows
        for model in (User, Translation, Glossary):
            assert await session.scalar(select(func.count()).select_from(model)) == 0


async def test_raw_sql_on_the_apps_connection_cannot_change_another_tenants_rows(
    http: httpx.AsyncClient, deployment: Deployment
) -> None:
    a, b = await tenant_with_data(http), await tenant_with_data(http)
    async with deployment.database.transaction(tenant=b.id) as session:
        for statement in (
            "UPDATE users SET name = 'Mallory' WHERE id = :user",
            "UPDATE translations SET progress = 99 WHERE user_id = :user",
            "DELETE FROM glossaries WHERE user_id = :user",
            "DELETE FROM users WHERE id = :user",
        ):
            result = await session.execute(text(statement), {"user": a.user})
            assert result.rowcount == 0, statement  # type: ignore[attr-defined]
    with pytest.raises(DBAPIError, match="violates row-level security policy"):
        async with deployment.database.transaction(tenant=b.id) as session:
            await session.execute(
                text("UPDATE users SET tenant_id = :a WHERE tenant_id = :b"),
                {"a": a.id, "b": b.id},
            )
    user = await http.get(f"/users/{a.user}", headers=a.headers)
    assert user.json()["name"] == "Ada"
    glossary = await http.get(f"/users/{a.user}/glossary", headers=a.headers)
    assert len(glossary.json()) == 1


@pytest.mark.parametrize(
    "headers", [{}, {"X-Tenant-ID": "acme"}, {"X-Tenant-ID": ""}, {"X-Tenant-ID": "1' OR '1"}]
)
async def test_a_missing_or_malformed_tenant_is_422(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path in (("GET", f"/users/{uuid.uuid4()}"), ("POST", "/users")):
        body = {"google_id": "g", "email": "e@example.com"}
        response = await http.request(method, path, headers=headers, json=body)
        assert response.status_code == 422, (path, headers)
        assert ["header", "X-Tenant-ID"] in [error["loc"] for error in response.json()["detail"]]


async def test_without_migration_0002_the_unfiltered_query_sees_every_tenant(
    http: httpx.AsyncClient, deployment: Deployment
) -> None:
    """The same query as above, with the policies downgraded away: the tests can fail."""
    a, b = await tenant_with_data(http), await tenant_with_data(http)

    async def tenants_seen_by_a() -> set[uuid.UUID]:
        async with deployment.database.transaction(tenant=a.id) as session:
            return set(await session.scalars(select(User.tenant_id)))

    async with deployment.admin.connect() as connection:
        await connection.execute(text(f"SET ROLE {deployment.owner}"))
        await connection.commit()
        await migrations.downgrade(connection, MIGRATIONS, "0001")
        try:
            assert {a.id, b.id} <= await tenants_seen_by_a()
        finally:
            await migrations.upgrade(connection, MIGRATIONS)
    assert await tenants_seen_by_a() == {a.id}
