"""psycopg: a transaction's ``BEGIN`` travels with its first write, in one round trip.

psycopg sends ``BEGIN`` as a query of its own before the first statement of a
transaction, and waits for it (even in pipeline mode, where it syncs right
after it), so a unit of work that writes once costs ``BEGIN``, the write and
``COMMIT``: three round trips. Lean reads (`plinth.db.lean_reads`) already keep
a connection in autocommit until its first write; on psycopg that write is
sent here instead, in pipeline mode: ``BEGIN`` and the statement, then one
``Sync``, so the client waits once for both. The transaction then stays open
as if psycopg had begun it (autocommit does not end an explicit ``BEGIN``):
later statements run in it, ``COMMIT`` and ``ROLLBACK`` end it, and a failing
write aborts it and raises the driver's error as usual. A single-write unit
of work costs two round trips.

Only a plain ``BEGIN`` is sent this way: a connection with its own isolation
level, read-only or deferrable setting keeps psycopg's ``BEGIN``.

asyncpg cannot do this: its protocol sends one statement per ``Sync`` and has
no pipeline (MagicStack/asyncpg#588), so its units of work keep ``BEGIN`` as
a round trip of its own.
"""

from __future__ import annotations

import collections
from typing import Any

from sqlalchemy.engine import Dialect, ExecutionContext
from sqlalchemy.util import await_

__all__ = ["can_pipeline_begin", "execute_with_begin"]

_TUPLES_OK = 2  # psycopg.pq.ExecStatus.TUPLES_OK (psycopg is optional)


def can_pipeline_begin(dialect: Dialect) -> bool:
    """Whether `dialect`'s driver can send ``BEGIN`` with a statement (psycopg with
    a libpq that has pipeline mode, PostgreSQL 14's or later)."""
    if dialect.driver != "psycopg":
        return False
    from psycopg import AsyncPipeline

    return AsyncPipeline.is_supported()


def execute_with_begin(
    cursor: Any, statement: str, parameters: Any, context: ExecutionContext
) -> bool:
    """Send ``BEGIN`` and `statement` in one round trip on SQLAlchemy's psycopg
    `cursor`, whose connection is in autocommit outside a transaction; leave
    the rows where SQLAlchemy reads them. Returns False, sending nothing, when
    the statement or the connection needs psycopg's own path."""
    driver_cursor = getattr(cursor, "_cursor", None)
    if driver_cursor is None or getattr(cursor, "server_side", True):
        return False
    if context.execution_options.get("stream_results"):
        return False
    driver = driver_cursor.connection
    if driver.isolation_level is not None or driver.read_only is not None:
        return False
    if driver.deferrable is not None:
        return False
    try:
        rows = await_(_begin_and_execute(driver, driver_cursor, statement, parameters))
    except Exception as error:
        cursor._adapt_connection._handle_exception(error)
    if rows is not None:
        cursor._rows = rows
    return True


async def _begin_and_execute(
    driver: Any, driver_cursor: Any, statement: str, parameters: Any
) -> collections.deque[Any] | None:
    async with driver.pipeline():
        # Queued, not awaited: the pipeline's exit sends one Sync and reads
        # every result. prepare=False: a prepared BEGIN would only add a Parse.
        await driver.execute(b"BEGIN", prepare=False)
        await driver_cursor.execute(statement, parameters)
    result = driver_cursor.pgresult
    if result is not None and result.status == _TUPLES_OK:
        return collections.deque(await driver_cursor.fetchall())
    return None
