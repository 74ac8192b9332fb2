"""Throw-away databases on a server, for the migration kit and ``plinth db check``.

The same job as `plinth.testing.create_database`, without importing pytest,
so that the CLI can use it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import URL, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from plinth.engine import engine_arguments
from plinth.errors import ConfigurationError, DatabaseUnavailableError
from plinth.settings import DatabaseSettings, redact

__all__ = ["scratch_database"]

_numbers = itertools.count()
INSUFFICIENT_PRIVILEGE = "42501"


def _engine(url: URL) -> AsyncEngine:
    settings = DatabaseSettings(database_url=url, app_env="test", pool_size=2, max_overflow=2)
    bound_url, options = engine_arguments(settings, url)
    return create_async_engine(bound_url, **options)


async def _admin(server: URL, statement: str) -> None:
    admin = _engine(server)
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


@asynccontextmanager
async def scratch_database(server: URL, label: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a new empty database on `server`, dropped on exit."""
    name = f"plinth_{label}_{os.getpid()}_{next(_numbers)}"[:63]
    await _admin(server, f'CREATE DATABASE "{name}"')
    engine = _engine(server.set(database=name))
    try:
        yield engine
    finally:
        await engine.dispose()
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
