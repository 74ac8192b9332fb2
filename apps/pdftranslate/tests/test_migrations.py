"""The migration on a fresh database: enum types created before the tables, dropped after.

The seed's migration declared its enums with ``create_type=False`` and never
created them, so it failed on a fresh database, and nothing tested its
downgrade. These tests run the real migration on empty databases (the test
server and the local PostgreSQL 15), and show that Plinth's migration kit
fails on the seed's mistakes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from plinth import kit, migrations
from plinth.project import AppSpec
from plinth.testing import create_database, drop_database, local_server_url

TABLES = {"users", "translations", "document_blocks", "glossaries"}
ENUMS = {
    "subscription_tier": ["free", "pro", "enterprise"],
    "translation_status": ["pending", "processing", "completed", "failed"],
}


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
    name = f"plinth_scratch_pdftranslate_{os.getpid()}"
    url = await create_database(server, name)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()
        await drop_database(server, name)


async def schema(connection: AsyncConnection) -> tuple[set[str], dict[str, list[str]], int]:
    """Tables, enum types with their labels in order, and updated_at functions."""
    tables = await connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )
    enums = await connection.execute(
        text(
            "SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) "
            "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "LEFT JOIN pg_enum e ON e.enumtypid = t.oid "
            "WHERE n.nspname = 'public' AND t.typtype = 'e' GROUP BY t.typname"
        )
    )
    functions = await connection.execute(
        text("SELECT count(*) FROM pg_proc WHERE proname = 'update_updated_at_column'")
    )
    result = (
        set(tables.scalars()) - {"alembic_version"},
        {name: labels for name, labels in enums},
        functions.scalar_one(),
    )
    await connection.rollback()
    return result


async def test_upgrade_downgrade_upgrade(scratch: AsyncConnection, plinth_app: AppSpec) -> None:
    await migrations.upgrade(scratch, plinth_app.migrations)
    assert await migrations.current(scratch) == ("0001",)
    assert await schema(scratch) == (TABLES, ENUMS, 1)

    await migrations.downgrade(scratch, plinth_app.migrations, "-1")
    assert await migrations.current(scratch) == ()
    # pg_type: the types are gone with the tables, so nothing blocks a second upgrade.
    assert await schema(scratch) == (set(), {}, 0)

    await migrations.upgrade(scratch, plinth_app.migrations)
    assert await schema(scratch) == (TABLES, ENUMS, 1)
    assert await migrations.drift(scratch, plinth_app.metadata) == []


async def test_the_status_column_uses_the_enum_type(
    scratch: AsyncConnection, plinth_app: AppSpec
) -> None:
    await migrations.upgrade(scratch, plinth_app.migrations)
    columns = await scratch.execute(
        text(
            "SELECT table_name, udt_name, column_default FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name IN ('status', 'subscription_tier') "
            "ORDER BY table_name"
        )
    )
    assert columns.all() == [
        ("translations", "translation_status", "'pending'::translation_status"),
        ("users", "subscription_tier", "'free'::subscription_tier"),
    ]


def seeds_mistake(app: AppSpec, tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the app's migrations with one line changed as the seed had it."""
    copy = tmp_path / "migrations"
    shutil.copytree(app.migrations, copy, ignore=shutil.ignore_patterns("__pycache__"))
    script = copy / "versions" / "0001_initial_schema.py"
    source = script.read_text()
    assert old in source
    script.write_text(source.replace(old, new))
    return copy


async def test_the_kit_fails_a_migration_that_never_creates_its_enums(
    server: URL, plinth_app: AppSpec, tmp_path: Path
) -> None:
    broken = seeds_mistake(
        plinth_app, tmp_path, "        enum.create(op.get_bind(), checkfirst=False)", "        pass"
    )
    with pytest.raises(kit.KitFailure, match='type "subscription_tier" does not exist'):
        await kit.upgrade_from_empty(server, broken)


async def test_the_kit_fails_a_downgrade_that_leaves_its_enums(
    server: URL, plinth_app: AppSpec, tmp_path: Path
) -> None:
    broken = seeds_mistake(
        plinth_app, tmp_path, "        enum.drop(op.get_bind(), checkfirst=False)", "        pass"
    )
    with pytest.raises(kit.KitFailure, match='type "subscription_tier" already exists'):
        await kit.stairway(server, broken)
    # no_trace fails too: on the upgrade after the downgrade, as the stairway does.
    with pytest.raises(kit.KitFailure, match="subscription_tier"):
        await kit.no_trace(server, broken)
