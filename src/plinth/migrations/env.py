"""The body of an app's ``migrations/env.py``.

An app's ``env.py`` is two lines::

    from plinth.migrations import run_env
    from myapp.models import Base
    run_env(Base.metadata)

Online, it runs on the connection that `plinth.migrations.upgrade` (or any
caller) put in ``config.attributes["connection"]``; run by the plain
``alembic`` command, it opens a `Database` of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData

__all__ = ["run_env"]


def run_env(target_metadata: MetaData | None, **configure: Any) -> None:
    """The body of an app's ``env.py``: offline SQL, or online on the given connection."""
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
    connection = context.config.attributes.get("connection")
    if connection is None:
        # Run by the plain `alembic` command: no loop is running yet.
        asyncio.run(_run_standalone(context.config, options))
        return
    _run_online(connection, options)


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


async def _run_standalone(config: Config, options: dict[str, Any]) -> None:
    from plinth.db.database import Database

    async with Database() as database, database.engine.connect() as connection:
        config.attributes["connection"] = connection
        await connection.run_sync(lambda sync: _run_online(sync, options))
        await connection.commit()
