"""Lock-aware migrations: timeouts, the blocking backend named, the failed revision."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from plinth import migrations
from plinth.errors import ConfigurationError, MigrationError
from plinth.migrations.guard import MigrationSettings
from plinth.project import find_app

APPS = Path(__file__).parent / "fixtures" / "migration_apps"
UNSAFE = find_app(APPS / "kit_unsafe").migrations


@pytest.fixture
async def engine(scratch_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(scratch_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def at_0001(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection on a database with kit_unsafe's first revision applied."""
    async with engine.connect() as connection:
        await migrations.upgrade(connection, UNSAFE, "0001")
        yield connection


async def hold(engine: AsyncEngine, statement: str) -> tuple[AsyncConnection, int]:
    """A second connection that runs `statement` and keeps its transaction open."""
    blocker = await engine.connect()
    pid = (await blocker.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    await blocker.execute(text(statement))
    return blocker, pid


async def test_a_held_lock_fails_fast_naming_the_blocker(
    at_0001: AsyncConnection, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_MIGRATION_LOCK_TIMEOUT", "300")
    blocker, pid = await hold(engine, "LOCK TABLE accounts IN ROW EXCLUSIVE MODE")
    try:
        with pytest.raises(MigrationError) as caught:
            await migrations.upgrade(at_0001, UNSAFE, "0002")
    finally:
        await blocker.close()
    message = str(caught.value)
    assert message.startswith(
        "upgrade to '0002' failed in revision 0002 ('An index built with writes blocked, "
        "and a required column.', 0002_name_index.py): could not take a lock within "
        "lock_timeout = 300 ms (canceling statement due to lock timeout); blocked by "
        f"pid {pid} (user 'postgres'"
    ), message
    assert "idle in transaction for " in message
    assert "last query: 'LOCK TABLE accounts IN ROW EXCLUSIVE MODE')" in message
    assert message.endswith("the database is at 0001.")
    assert "\n" not in message
    assert await migrations.current(at_0001) == ("0001",)


async def test_statement_timeout_limits_a_migration(
    at_0001: AsyncConnection, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_MIGRATION_LOCK_TIMEOUT", "0")
    monkeypatch.setenv("DB_MIGRATION_STATEMENT_TIMEOUT", "300")
    blocker, _ = await hold(engine, "LOCK TABLE accounts IN ROW EXCLUSIVE MODE")
    try:
        with pytest.raises(MigrationError, match="ran longer than statement_timeout = 300 ms"):
            await migrations.upgrade(at_0001, UNSAFE, "0002")
    finally:
        await blocker.close()


async def test_timeouts_apply_to_migrations_only(
    at_0001: AsyncConnection, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_MIGRATION_LOCK_TIMEOUT", "100")
    # Another replica migrating: its advisory lock outlasts lock_timeout, and we wait.
    other = await engine.connect()
    await other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": migrations.MIGRATION_LOCK_KEY})
    await other.commit()
    waiting = asyncio.create_task(migrations.upgrade(at_0001, UNSAFE, "0002"))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": migrations.MIGRATION_LOCK_KEY})
    await other.close()
    await waiting
    assert await migrations.current(at_0001) == ("0002",)
    # And the session is back to its defaults afterwards.
    settings = (
        await at_0001.execute(
            text("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
        )
    ).one()
    await at_0001.rollback()
    assert tuple(settings) == ("0", "0")


def test_bad_timeout_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_MIGRATION_LOCK_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match=r"^DB_MIGRATION_LOCK_TIMEOUT Input should be"):
        MigrationSettings.load()


def test_defaults() -> None:
    settings = MigrationSettings()
    assert (settings.lock_timeout, settings.statement_timeout) == (5_000, 600_000)
