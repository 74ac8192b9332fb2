"""The initial migration and scripts/init_db.py, on fresh databases.

The migration must build what ``create_all`` builds, including what Alembic's
autogenerate cannot see (the trigger function, the triggers, check
constraints), and must come down cleanly.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from plinth import DatabaseSettings, migrations
from plinth.testing import create_database, drop_database
from rndcards.models import Base
from rndcards.scripts.init_db import init_db

MIGRATIONS = Path(__file__).parents[1] / "migrations"
_numbers = itertools.count()

CATALOG = {
    "functions": "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
    "AND p.prokind = 'f' AND NOT EXISTS (SELECT 1 FROM pg_depend d "
    "WHERE d.objid = p.oid AND d.deptype = 'e')",
    "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    "constraints": "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
    "JOIN pg_class t ON t.oid = c.conrelid "
    "WHERE c.connamespace = 'public'::regnamespace AND t.relname <> 'alembic_version'",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
    "AND tablename <> 'alembic_version'",
    "extensions": "SELECT extname, extname FROM pg_extension",
    "defaults": "SELECT table_name || '.' || column_name, column_default "
    "FROM information_schema.columns WHERE table_schema = 'public' "
    "AND table_name <> 'alembic_version'",
}


@pytest.fixture
async def fresh_url(plinth_server: URL) -> AsyncIterator[URL]:
    name = f"rndcards_fresh_{os.getpid()}_{next(_numbers)}"
    url = await create_database(plinth_server, name)
    try:
        yield url
    finally:
        await drop_database(plinth_server, name)


async def _catalog(connection: AsyncConnection) -> dict[str, dict[str, str]]:
    catalog = {}
    for kind, query in CATALOG.items():
        rows = await connection.execute(text(query))
        catalog[kind] = {str(name): str(definition) for name, definition in rows}
    return catalog


async def test_init_db_migrates_a_fresh_database_to_head(fresh_url: URL) -> None:
    settings = DatabaseSettings(database_url=fresh_url, pool_size=1)
    assert await init_db(settings) == ("0001",)
    assert await init_db(settings) == ("0001",)  # again: nothing to do
    engine = create_async_engine(fresh_url)
    try:
        async with engine.connect() as connection:
            tables = set(
                (
                    await connection.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    )
                ).scalars()
            )
    finally:
        await engine.dispose()
    assert tables == {
        "alembic_version",
        "users",
        "batches",
        "projects",
        "project_contents",
        "generation_metadata",
    }


def _run_script(url: str) -> subprocess.CompletedProcess[str]:
    script = Path(__file__).parents[1] / "scripts" / "init_db.py"
    env = {**os.environ, "DATABASE_URL": url, "DB_CONNECT_RETRIES": "0"}
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )


async def test_init_db_script_runs_as_a_file(fresh_url: URL) -> None:
    done = _run_script(fresh_url.render_as_string(hide_password=False))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rndcards: database at 0001 (head)"


async def test_init_db_script_fails_in_one_line_without_the_password(fresh_url: URL) -> None:
    wrong = fresh_url.set(database="no_such_database", password="s3cret")
    done = _run_script(wrong.render_as_string(hide_password=False))
    assert done.returncode == 1
    assert done.stderr.startswith("init_db: cannot connect to")
    assert "no_such_database" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout


async def test_migration_builds_what_create_all_builds(plinth_server: URL) -> None:
    catalogs = []
    names = [f"rndcards_{kind}_{os.getpid()}" for kind in ("migrated", "created")]
    try:
        for name in names:
            engine = create_async_engine(await create_database(plinth_server, name))
            try:
                async with engine.connect() as connection:
                    if name == names[0]:
                        await migrations.upgrade(connection, MIGRATIONS)
                    else:
                        await connection.run_sync(Base.metadata.create_all)
                        await connection.commit()
                    catalogs.append(await _catalog(connection))
            finally:
                await engine.dispose()
    finally:
        for name in names:
            await drop_database(plinth_server, name)
    migrated, created = catalogs
    assert set(migrated["triggers"]) == {
        "trigger_update_batch_quality",
        "trigger_update_batch_quality_rows",
    }
    assert set(migrated["functions"]) == {"update_batch_quality_score"}
    for kind in CATALOG:
        assert migrated[kind] == created[kind], kind


async def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(
    fresh_url: URL,
) -> None:
    engine = create_async_engine(fresh_url)
    try:
        async with engine.connect() as connection:
            await migrations.upgrade(connection, MIGRATIONS)
            before = await _catalog(connection)
            await connection.rollback()
            await migrations.downgrade(connection, MIGRATIONS, "base")
            after = await _catalog(connection)
            await connection.rollback()
            assert await migrations.current(connection) == ()
            await migrations.upgrade(connection, MIGRATIONS)
            again = await _catalog(connection)
            await connection.rollback()
    finally:
        await engine.dispose()
    assert not any(after[kind] for kind in ("functions", "triggers", "constraints", "indexes"))
    assert set(after["extensions"]) == {"plpgsql"}
    assert again == before
