"""Migrations that fail fast and say why: timeouts, blockers, the failing revision.

A migration that waits for a lock holds up every query queued behind it, so
the migration session runs with a ``lock_timeout`` (5 s) and a
``statement_timeout`` (10 min), set from `MigrationSettings`
(``DB_MIGRATION_LOCK_TIMEOUT``, ``DB_MIGRATION_STATEMENT_TIMEOUT``, in
milliseconds; 0 means no limit). They are set once the advisory lock is held,
so replicas still queue behind each other's migrations without a limit.

While the migrations run, `BlockerWatch` asks ``pg_blocking_pids`` on a
second connection who is in the way; when the lock timeout strikes, `explain`
names that backend's pid and query. `explain` also turns any failure into
one paragraph: the action, the revision that failed and its file, the reason,
and the revision the database was left at (each revision has its own
transaction, so a failure rolls back only its own work).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic.runtime.migration import MigrationContext
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from plinth.errors import MigrationError, PlinthError
from plinth.migrations.config import load_scripts
from plinth.settings import PlinthSettings

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "Blocker",
    "BlockerWatch",
    "MigrationSettings",
    "apply_timeouts",
    "explain",
    "guarded",
]

LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"


class MigrationSettings(PlinthSettings):
    """Limits for the migration session (``DB_MIGRATION_*``)."""

    model_config = SettingsConfigDict(env_prefix="DB_MIGRATION_")

    lock_timeout: int = Field(default=5_000, ge=0)
    """Milliseconds a statement may wait for a lock; 0 waits forever."""

    statement_timeout: int = Field(default=600_000, ge=0)
    """Milliseconds a statement may run; 0 means no limit."""


async def apply_timeouts(connection: AsyncConnection, settings: MigrationSettings) -> int:
    """Set the session's timeouts (committed: they outlive each migration's
    transaction) and return its backend pid."""
    pid = await connection.scalar(
        text(
            "SELECT pg_backend_pid() FROM (SELECT set_config('lock_timeout', :lock, false), "
            "set_config('statement_timeout', :statement, false)) AS applied"
        ),
        {"lock": f"{settings.lock_timeout}ms", "statement": f"{settings.statement_timeout}ms"},
    )
    await connection.commit()
    return int(pid)


@dataclass(frozen=True)
class Blocker:
    """A backend that held a lock the migration waited for."""

    pid: int
    user: str
    application: str
    state: str
    seconds: int
    query: str

    def __str__(self) -> str:
        who = f"pid {self.pid} (user {self.user!r}"
        if self.application:
            who += f", application {self.application!r}"
        query = " ".join(self.query.split())
        return f"{who}, {self.state} for {self.seconds} s, last query: {query!r})"


_BLOCKERS = text(
    "SELECT pid, coalesce(usename, ''), coalesce(application_name, ''), coalesce(state, ''), "
    "coalesce(extract(epoch FROM now() - coalesce(xact_start, query_start)), 0)::int, "
    "left(coalesce(query, ''), 300) "
    "FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(:pid)) ORDER BY pid"
)


class BlockerWatch:
    """Polls ``pg_blocking_pids(pid)`` on a second connection while a block runs.

    The first poll waits one interval, so migrations that never wait for a
    lock never open the second connection.
    """

    def __init__(self, connection: AsyncConnection, pid: int, interval: float = 0.1) -> None:
        self._engine = connection.engine
        self._pid = pid
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.blockers: list[Blocker] = []
        """The last blockers seen (empty if the migration never waited)."""

    async def _poll(self) -> None:
        await asyncio.sleep(self._interval)
        async with self._engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            while True:
                rows = await connection.execute(_BLOCKERS, {"pid": self._pid})
                found = [Blocker(*row) for row in rows]
                if found:
                    self.blockers = found
                await asyncio.sleep(self._interval)

    async def __aenter__(self) -> BlockerWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            # The watch is advice for an error message; its own failure is not news.
            with contextlib.suppress(asyncio.CancelledError, SQLAlchemyError, OSError):
                await self._task


def _reason(cause: BaseException, settings: MigrationSettings, blockers: list[Blocker]) -> str:
    if isinstance(cause, DBAPIError):
        orig = cause.orig
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        first = str(orig).strip().splitlines()[0] if orig is not None else type(cause).__name__
        if state == LOCK_NOT_AVAILABLE:
            who = "; ".join(str(b) for b in blockers) or "a backend that has since moved on"
            return (
                f"could not take a lock within lock_timeout = {settings.lock_timeout} ms "
                f"({first}); blocked by {who}. Retry once that transaction ends, or raise "
                "DB_MIGRATION_LOCK_TIMEOUT"
            )
        if state == QUERY_CANCELED and "statement timeout" in first:
            return (
                f"a statement ran longer than statement_timeout = {settings.statement_timeout} "
                f"ms ({first}); raise DB_MIGRATION_STATEMENT_TIMEOUT for this migration"
            )
        return first
    return f"{type(cause).__name__}: {cause}".rstrip(": ")


def _position(sync_connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(sync_connection).get_current_heads())


def _failing(migrations: Path, position: tuple[str, ...], target: str, upward: bool) -> Any:
    script = load_scripts(migrations)
    try:
        if not upward:
            return script.get_revision(position[0]) if position else None
        pending = list(script.iterate_revisions(target, position or "base"))
    except Exception:  # a relative or unknown target: the message does without it
        return None
    return pending[-1] if pending else None


async def explain(
    connection: AsyncConnection,
    migrations: Path,
    action: str,
    target: str,
    error: BaseException,
    *,
    upward: bool,
    settings: MigrationSettings,
    blockers: list[Blocker],
) -> PlinthError:
    """One paragraph for a failed upgrade or downgrade, naming the failed revision."""
    cause = error.__cause__ if isinstance(error, MigrationError) else error
    if isinstance(error, PlinthError) and not isinstance(cause, DBAPIError):
        return error  # Alembic's own refusal (two heads, unknown revision): already one line
    reason = _reason(cause or error, settings, blockers)
    try:
        await connection.rollback()
        position: tuple[str, ...] | None = await connection.run_sync(_position)
        await connection.rollback()
    except SQLAlchemyError:
        position = None
    failed = _failing(migrations, position, target, upward) if position is not None else None
    where = ""
    if failed is not None:
        doc = (failed.doc or "").strip()
        where = f" in revision {failed.revision} ({doc!r}, {Path(failed.path).name})"
    after = ""
    if position is not None:
        at = ", ".join(position) or "base"
        after = f" That revision's transaction was rolled back: the database is at {at}."
    return MigrationError(f"{action} failed{where}: {reason}.{after}")


@asynccontextmanager
async def guarded(
    connection: AsyncConnection, migrations: Path, action: str, target: str, *, upward: bool
) -> AsyncIterator[None]:
    """Run the block with the session's timeouts and blocker watch; turn its
    failure into `explain`'s paragraph. Call it with the advisory lock held."""
    load_scripts(migrations)
    settings = MigrationSettings.load()
    pid = await apply_timeouts(connection, settings)
    try:
        async with BlockerWatch(connection, pid) as watch:
            try:
                yield
            except Exception as exc:
                explained = await explain(
                    connection,
                    migrations,
                    action,
                    target,
                    exc,
                    upward=upward,
                    settings=settings,
                    blockers=watch.blockers,
                )
                if explained is exc:
                    raise
                raise explained from exc
    finally:
        await connection.rollback()
        await connection.execute(text("RESET lock_timeout"))
        await connection.execute(text("RESET statement_timeout"))
        await connection.commit()
