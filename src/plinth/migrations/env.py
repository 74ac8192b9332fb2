"""The body of an app's ``migrations/env.py``.

An app's ``env.py`` is two lines::

    from plinth.migrations import run_env
    from myapp.models import Base
    run_env(Base.metadata)

Online, it runs on what the caller put in ``config.attributes["connection"]``:
a `Connection` (`plinth.migrations.upgrade` passes one), or an `Engine` or
`AsyncEngine` (pytest-alembic passes its ``alembic_engine``). Run by the plain
``alembic`` command, with nothing there, it opens a `Database` of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from plinth.errors import MigrationError

if TYPE_CHECKING:
    from sqlalchemy import MetaData

__all__ = ["run_env"]


def run_env(target_metadata: MetaData | None, **configure: Any) -> None:
    """The body of an app's ``env.py``: offline SQL, or online on the given connection.

    `target_metadata` is the app's ``Base.metadata`` (what autogenerate and
    ``plinth db check`` compare with the database). The context is configured
    with ``compare_type``, ``compare_server_default`` and
    ``transaction_per_migration`` on (each revision in its own transaction);
    `configure` adds or overrides ``context.configure`` options, e.g.
    ``include_object=...`` or ``version_table_schema="app"``.
    """
    from alembic import context

    options: dict[str, Any] = {
        "target_metadata": target_metadata,
        "compare_type": True,
        "compare_server_default": True,
        "transaction_per_migration": True,
        **configure,
    }
    if context.is_offline_mode():
        context.configure(dialect_name="postgresql", literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    given = context.config.attributes.get("connection")
    if given is None:
        # Run by the plain `alembic` command: no loop is running yet.
        location = context.config.get_main_option("script_location") or "migrations"
        asyncio.run(_run_standalone(Path(location).resolve(), options))
    elif isinstance(given, AsyncEngine):
        # pytest-alembic and other tools hand over an engine, from synchronous code.
        asyncio.run(_run_on_engine(given, options))
    elif isinstance(given, Engine):
        with given.connect() as connection:
            _run_online(connection, options)
            connection.commit()
    elif isinstance(given, Connection):
        _run_online(given, options)
    else:
        raise MigrationError(
            f'config.attributes["connection"] is a {type(given).__name__}; pass a Connection '
            "(e.g. from AsyncConnection.run_sync), an Engine or an AsyncEngine"
        )


def _run_online(connection: Connection, options: dict[str, Any]) -> None:
    from alembic import context

    applied: list[str] = context.config.attributes.setdefault("plinth.applied", [])

    def on_version_apply(
        ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Any
    ) -> None:
        # `heads` is where the database stands once this step has committed.
        applied.append(", ".join(sorted(heads)) or "base")

    context.configure(connection=connection, on_version_apply=on_version_apply, **options)
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(migrations: Path, options: dict[str, Any]) -> None:
    from plinth.db.database import Database

    # The migrations folder tells the Database which app's embedded database to use.
    async with Database(migrations=migrations) as database:
        await _run_on_engine(database.engine, options)


async def _run_on_engine(engine: AsyncEngine, options: dict[str, Any]) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(lambda sync: _run_online(sync, options))
        await connection.commit()
