"""Upgrade, downgrade and inspect a database, async and inside a running loop.

Commands here take an `AsyncConnection` and run Alembic on it through
``run_sync``, so tests and start-up code call them without a second event
loop.

`upgrade` and `downgrade` hold a session-level advisory lock on their own
connection: replicas that start together apply each revision exactly once,
the others wait and then find the database at head. Each revision runs in
its own transaction, so a failure leaves the database at the last good one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from plinth.errors import MigrationError
from plinth.migrations import guard
from plinth.migrations.config import alembic_config

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["MIGRATION_LOCK_KEY", "current", "downgrade", "drift", "upgrade"]

MIGRATION_LOCK_KEY = int.from_bytes(b"plinth", "big")
"""The advisory lock key that serialises migrations across processes."""


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
        async with guard.guarded(connection, migrations, action, target, upward=upward):
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
