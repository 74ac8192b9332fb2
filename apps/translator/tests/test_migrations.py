"""Upgrade, downgrade to base, upgrade again — on every server we can reach."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from plinth import migrations
from plinth.project import AppSpec
from plinth.testing import create_database, drop_database, local_server_url


@pytest.fixture(params=["test server", "local PostgreSQL 15"])
def server(request: pytest.FixtureRequest, plinth_server: URL) -> URL:
    if request.param == "test server":
        return plinth_server
    local = local_server_url()
    if local is None:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    return local


@pytest.fixture
async def scratch(server: URL) -> AsyncIterator[AsyncConnection]:
    name = f"plinth_scratch_translator_{os.getpid()}"
    url = await create_database(server, name)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()
        await drop_database(server, name)


async def user_tables(connection: AsyncConnection) -> set[str]:
    rows = await connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )
    await connection.rollback()
    return set(rows.scalars())


async def test_upgrade_downgrade_upgrade(scratch: AsyncConnection, plinth_app: AppSpec) -> None:
    await migrations.upgrade(scratch, plinth_app.migrations)
    assert await migrations.current(scratch) == ("0001",)
    assert await user_tables(scratch) == {"alembic_version", "users", "documents", "translations"}

    await migrations.downgrade(scratch, plinth_app.migrations, "base")
    assert await migrations.current(scratch) == ()
    assert await user_tables(scratch) == {"alembic_version"}
    functions = await scratch.execute(
        text("SELECT count(*) FROM pg_proc WHERE proname = 'update_updated_at_column'")
    )
    assert functions.scalar_one() == 0
    await scratch.rollback()

    await migrations.upgrade(scratch, plinth_app.migrations)
    assert await migrations.current(scratch) == ("0001",)


async def test_models_match_the_migration(scratch: AsyncConnection, plinth_app: AppSpec) -> None:
    await migrations.upgrade(scratch, plinth_app.migrations)
    assert await migrations.drift(scratch, plinth_app.metadata) == []


async def test_uuid_ossp_is_enabled_where_the_server_ships_it(
    scratch: AsyncConnection, plinth_app: AppSpec
) -> None:
    await migrations.upgrade(scratch, plinth_app.migrations)
    available, installed = (
        await scratch.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'uuid-ossp'), "
                "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'uuid-ossp')"
            )
        )
    ).one()
    assert installed == available
