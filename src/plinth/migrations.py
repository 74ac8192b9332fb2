"""Alembic, async and usable from inside a running event loop.

An app's ``migrations/env.py`` is two lines::

    from plinth.migrations import run_env
    from myapp.models import Base
    run_env(Base.metadata)

Commands here take an `AsyncConnection` and run Alembic on it through
``run_sync``, so tests and start-up code call them without a second event
loop. No ``alembic.ini`` is needed: the script location is the app's
``migrations/`` folder.

`upgrade` and `downgrade` hold a session-level advisory lock on their own
connection: replicas that start together apply each revision exactly once,
the others wait and then find the database at head. Each revision runs in
its own transaction, so a failure leaves the database at the last good one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import alembic_postgresql_enum  # noqa: F401  (autogenerate: enum types, values; ALTER TYPE ops)
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from plinth import migration_guard
from plinth.errors import MigrationError

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "MIGRATION_LOCK_KEY",
    "alembic_config",
    "current",
    "downgrade",
    "drift",
    "heads",
    "run_env",
    "upgrade",
]

MIGRATION_LOCK_KEY = int.from_bytes(b"plinth", "big")
"""The advisory lock key that serialises migrations across processes."""


def alembic_config(migrations: Path, connection: Connection | None = None) -> Config:
    """An Alembic `Config` for the app's migrations folder (no ini file)."""
    if not (migrations / "env.py").is_file():
        raise MigrationError(f"no migrations at {str(migrations)!r}: env.py is missing")
    # Alembic's default `stdout` is bound when alembic is imported; pass the current one.
    config = Config(stdout=sys.stdout)
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def heads(migrations: Path) -> tuple[str, ...]:
    """The head revisions of the scripts (more than one means unmerged branches)."""
    return tuple(migration_guard.load_scripts(migrations).get_heads())


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
    from plinth.engine import Database

    async with Database() as database, database.engine.connect() as connection:
        config.attributes["connection"] = connection
        await connection.run_sync(lambda sync: _run_online(sync, options))
        await connection.commit()


@contextmanager
def _translated(action: str, config: Config) -> Iterator[None]:
    try:
        yield
    except CommandError as exc:
        raise MigrationError(f"{action} failed: {exc}") from exc
    except DBAPIError as exc:
        applied = config.attributes.get("plinth.applied") or []
        after = f" (database left at {applied[-1]!r})" if applied else ""
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise MigrationError(f"{action} failed{after}: {reason}") from exc


async def _locked(
    connection: AsyncConnection,
    migrations: Path,
    action: str,
    run: Callable[[Config], None],
    *,
    target: str = "head",
    upward: bool = True,
) -> None:
    await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    # Session-level lock: it survives this commit and every migration's own commit.
    await connection.commit()
    try:

        def body(sync_connection: Connection) -> None:
            config = alembic_config(migrations, sync_connection)
            with _translated(action, config):
                run(config)

        # Timeouts only now: replicas wait for each other's lock without a limit.
        async with migration_guard.guarded(connection, migrations, action, target, upward=upward):
            await connection.run_sync(body)
            await connection.commit()
    finally:
        await connection.rollback()
        await connection.execute(
            text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )
        await connection.commit()


async def upgrade(connection: AsyncConnection, migrations: Path, revision: str = "head") -> None:
    """Upgrade to `revision` under the migration lock."""
    await _locked(
        connection,
        migrations,
        f"upgrade to {revision!r}",
        lambda config: command.upgrade(config, revision),
        target=revision,
    )


async def downgrade(connection: AsyncConnection, migrations: Path, revision: str) -> None:
    """Downgrade to `revision` (``-1``, ``base``, an id) under the migration lock."""
    await _locked(
        connection,
        migrations,
        f"downgrade to {revision!r}",
        lambda config: command.downgrade(config, revision),
        target=revision,
        upward=False,
    )


async def current(connection: AsyncConnection) -> tuple[str, ...]:
    """The revisions the database is at (empty before the first upgrade)."""

    def read(sync_connection: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(sync_connection).get_current_heads())

    revisions = await connection.run_sync(read)
    await connection.rollback()
    return revisions


async def drift(connection: AsyncConnection, metadata: MetaData) -> list[Any]:
    """Operations autogenerate would emit to make the database match `metadata`."""

    def compare(sync_connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            sync_connection,
            opts={"compare_type": True, "compare_server_default": True},
        )
        return list(compare_metadata(context, metadata))

    diffs = await connection.run_sync(compare)
    await connection.rollback()
    return diffs
