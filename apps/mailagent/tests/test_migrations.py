"""The migration, run through psycopg: up, down to base, up again, and no drift."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from plinth import migrations
from plinth.project import AppSpec
from plinth.testing import create_database, drop_database


@pytest.fixture
async def scratch(plinth_server: URL, plinth_app: AppSpec) -> AsyncIterator[AsyncConnection]:
    name = f"plinth_scratch_mailagent_{os.getpid()}"
    url = await create_database(plinth_server, name)
    engine = create_async_engine(plinth_app.database.settings.with_driver(url))
    try:
        async with engine.connect() as connection:
            assert connection.dialect.driver == "psycopg"
            yield connection
    finally:
        await engine.dispose()
        await drop_database(plinth_server, name)


async def schema(connection: AsyncConnection) -> tuple[set[str], int]:
    tables = await connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )
    functions = await connection.execute(
        text("SELECT count(*) FROM pg_proc WHERE proname = 'update_updated_at_column'")
    )
    result = set(tables.scalars()), functions.scalar_one()
    await connection.rollback()
    return result


async def test_upgrade_downgrade_upgrade(scratch: AsyncConnection, plinth_app: AppSpec) -> None:
    await migrations.upgrade(scratch, plinth_app.migrations)
    assert await migrations.current(scratch) == ("0001",)
    assert await schema(scratch) == ({"alembic_version", "users"}, 1)

    await migrations.downgrade(scratch, plinth_app.migrations, "base")
    assert await migrations.current(scratch) == ()
    assert await schema(scratch) == ({"alembic_version"}, 0)

    await migrations.upgrade(scratch, plinth_app.migrations)
    assert await migrations.drift(scratch, plinth_app.metadata) == []
