"""Throw-away databases on a server: test databases, the migration kit, ``plinth db check``.

Kept apart from `plinth.testing` so that the CLI can use it without pytest.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import URL, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from plinth.db.engine import engine_arguments
from plinth.db.settings import DatabaseSettings, redact
from plinth.errors import ConfigurationError, DatabaseUnavailableError

__all__ = [
    "app_database_name",
    "create_database",
    "drop_database",
    "ensure_database",
    "scratch_database",
    "small_engine",
]

_numbers = itertools.count()
INSUFFICIENT_PRIVILEGE = "42501"


def small_engine(url: URL) -> AsyncEngine:
    """An engine with a pool of two, for tests and tools."""
    settings = DatabaseSettings(database_url=url, app_env="test", pool_size=2, max_overflow=2)
    bound_url, options = engine_arguments(settings, url)
    return create_async_engine(bound_url, **options)


async def _admin(server: URL, statement: str) -> None:
    admin = small_engine(server)
    try:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(statement))
    except (DBAPIError, OSError) as exc:
        orig = getattr(exc, "orig", None)
        reason = str(orig or exc).strip().splitlines()[0]
        if getattr(orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
            raise ConfigurationError(
                f"cannot create a scratch database on {redact(server)}: {reason}; the role "
                "needs CREATEDB (or unset DATABASE_URL to use the embedded server)"
            ) from exc
        raise DatabaseUnavailableError(f"cannot connect to {redact(server)}: {reason}") from exc
    finally:
        await admin.dispose()


async def create_database(server: URL, name: str) -> URL:
    """(Re)create the empty database `name` on `server` and return its URL."""
    await drop_database(server, name)
    await _admin(server, f'CREATE DATABASE "{name}"')
    return server.set(database=name)


def app_database_name(app_dir: Path) -> str:
    """The database an app gets on its project's embedded server: its package name."""
    return app_dir.resolve().name[:63]


async def ensure_database(server: URL, name: str) -> URL:
    """The URL of database `name` on `server`, created empty if it does not exist."""
    admin = small_engine(server)
    try:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            found = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if found is None:
                try:
                    await connection.execute(text(f'CREATE DATABASE "{name}"'))
                except DBAPIError as exc:  # another process created it meanwhile
                    if getattr(exc.orig, "sqlstate", None) != "42P04":
                        raise
    finally:
        await admin.dispose()
    return server.set(database=name)


async def drop_database(server: URL, name: str) -> None:
    """Drop database `name` on `server`, disconnecting whoever is still on it."""
    await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def scratch_database(server: URL, label: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a new empty database on `server`, dropped on exit."""
    name = f"plinth_{label}_{os.getpid()}_{next(_numbers)}"[:63]
    engine = small_engine(await create_database(server, name))
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_database(server, name)
