"""Lean reads: a transaction sends ``BEGIN`` only when it first writes.

SQLAlchemy's asyncpg (and psycopg) dialects wrap every statement in a
transaction, so a plain read through a session costs ``BEGIN; SELECT;
ROLLBACK`` (or ``COMMIT``): three round trips where one does. `enable_lean_reads`
makes an engine run each *plain read* with its DBAPI connection in autocommit
mode while no transaction has begun on it, and switch autocommit off again
before any other statement, so that the driver sends ``BEGIN`` with it. A unit
of work that only reads costs one round trip per query, and commits or rolls
back nothing; one that writes is as atomic as before: the write and everything
after it run in one transaction, committed (or rolled back) as usual, and a
failing ``COMMIT`` still raises. On psycopg that first write carries its
``BEGIN`` in the same round trip (`plinth.db.pipelined_begin`), and the
connection stays in autocommit around the transaction it began.

Why this is correct: under READ COMMITTED, PostgreSQL's default, every
statement of a transaction takes a fresh snapshot anyway, so a read before
the first write sees exactly what it would have seen inside the transaction.
Reads after the first write run inside it and see its changes. The one
difference is locking: a read outside the transaction releases its table
lock at once instead of holding it (blocking ``ALTER TABLE``) until commit.

A *plain read* is a compiled ``SELECT`` with no ``FOR UPDATE``/``FOR SHARE``,
no data-modifying CTE, no literal SQL text, no server-side cursor, and no
function call other than SQLAlchemy's known ones (``count``, ``max``, ...)
and a few pure built-ins (`PURE_FUNCTIONS`): any other function might write
or take a transaction-scoped lock (``pg_advisory_xact_lock``), so it runs in
the transaction. Raw SQL (``text()``, ``exec_driver_sql``), DDL, savepoints
and every DML statement begin the transaction. The verdict is cached on the
compiled statement, so hot queries pay for it once.

Lean reads stay off, and transactions behave exactly as in plain
SQLAlchemy, when the connection asks for an isolation level (through
``execution_options(isolation_level=...)``) or the server's default isolation
is not READ COMMITTED: under REPEATABLE READ and SERIALIZABLE every read of a
transaction must share its snapshot.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExecutionContext
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, PoolResetState
from sqlalchemy.sql import functions, visitors
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import ColumnClause, TextClause
from sqlalchemy.sql.selectable import Select

from plinth.db.pipelined_begin import can_pipeline_begin, execute_with_begin

__all__ = [
    "PURE_FUNCTIONS",
    "enable_lean_reads",
    "is_plain_read",
    "is_plain_select",
    "lean_reads_enabled",
]

PURE_FUNCTIONS = frozenset(
    {
        "abs", "ceil", "floor", "round", "trunc", "greatest", "least", "nullif",
        "lower", "upper", "length", "trim", "btrim", "ltrim", "rtrim", "substr", "substring",
        "replace", "left", "right", "split_part", "starts_with", "md5",
        "date_trunc", "date_part", "to_char", "age", "to_timestamp", "timezone",
        "jsonb_build_object", "json_build_object", "jsonb_agg", "json_agg", "string_agg",
        "bool_and", "bool_or", "avg", "stddev", "variance", "unnest", "array_length",
        "row_number", "lag", "lead", "first_value", "last_value", "ntile",
        "to_tsvector", "to_tsquery", "plainto_tsquery", "websearch_to_tsquery", "ts_rank",
        "similarity", "word_similarity", "current_setting", "version",
    }
)  # fmt: skip
"""Function names (beyond SQLAlchemy's registered ones) that keep a SELECT a plain read."""

_LEAN = "plinth_lean"
_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE (psycopg is optional)
_verdicts: weakref.WeakKeyDictionary[Compiled, bool] = weakref.WeakKeyDictionary()


def is_plain_select(statement: Any) -> bool:
    """Whether `statement` is a SELECT that may run outside a transaction."""
    if not isinstance(statement, Select):
        return False
    for element in visitors.iterate(statement):
        if isinstance(element, UpdateBase | TextClause):
            return False
        if isinstance(element, Select) and element._for_update_arg is not None:
            return False
        if isinstance(element, ColumnClause) and element.is_literal and element.name != "*":
            return False
        if (
            isinstance(element, functions.FunctionElement)
            and not isinstance(element, functions.GenericFunction)
            and getattr(element, "name", "").lower() not in PURE_FUNCTIONS
        ):
            return False
    return True


def is_plain_read(context: ExecutionContext) -> bool:
    """Whether the statement of `context` may run outside a transaction."""
    compiled = context.compiled
    if compiled is None:
        return False  # raw SQL: anything could be in it
    options = context.execution_options
    if options.get("stream_results") or options.get("yield_per"):
        return False  # server-side cursors need a transaction
    verdict = _verdicts.get(compiled)
    if verdict is None:
        verdict = _verdicts[compiled] = is_plain_select(compiled.statement)
    return verdict


def _in_transaction(connection: PoolProxiedConnection) -> bool:
    """Whether the driver connection is inside a transaction (after ``BEGIN``)."""
    driver: Any = connection.driver_connection
    status = getattr(driver, "info", None)
    if status is not None:  # psycopg
        return bool(status.transaction_status != _IDLE)
    return bool(driver.is_in_transaction())  # asyncpg


def _before_execute(
    cursor: Any, statement: str, parameters: Any, context: ExecutionContext
) -> bool:
    connection = context.root_connection.connection
    info = connection.info
    isolation = "isolation_level" in context.execution_options
    if not isolation and is_plain_read(context):
        if info.get(_LEAN):
            return False  # outside a transaction, or in one this module began
        dbapi_connection: Any = connection.dbapi_connection
        if dbapi_connection.autocommit or _in_transaction(connection):
            return False  # AUTOCOMMIT asked for, or a write has begun the transaction
        # No BEGIN for this read: the driver begins only with autocommit off.
        dbapi_connection.autocommit = True
        info[_LEAN] = True
    elif info.get(_LEAN):
        if _in_transaction(connection):
            return False  # a transaction this module began (plinth.db.pipelined_begin)
        # The driver sends BEGIN with this statement; later reads join it.
        info[_LEAN] = False
        connection.dbapi_connection.autocommit = False  # type: ignore[union-attr]
    return False


def _before_execute_pipelined(
    cursor: Any, statement: str, parameters: Any, context: ExecutionContext
) -> bool:
    """`_before_execute` on psycopg, where a write outside a transaction is sent
    with its BEGIN in one round trip (`plinth.db.pipelined_begin`)."""
    if "isolation_level" in context.execution_options or is_plain_read(context):
        return _before_execute(cursor, statement, parameters, context)
    connection = context.root_connection.connection
    info = connection.info
    dbapi_connection: Any = connection.dbapi_connection
    if _in_transaction(connection):
        return False
    lean = info.get(_LEAN)
    if not lean and dbapi_connection.autocommit:
        return False  # AUTOCOMMIT asked for
    if not lean:
        dbapi_connection.autocommit = True  # no I/O outside a transaction
        info[_LEAN] = True
    if execute_with_begin(cursor, statement, parameters, context):
        return True
    return _before_execute(cursor, statement, parameters, context)


def _before_executemany(
    cursor: Any, statement: str, parameters: Any, context: ExecutionContext
) -> bool:
    return _before_execute(cursor, statement, parameters, context)


def _before_execute_no_params(cursor: Any, statement: str, context: ExecutionContext) -> bool:
    return _before_execute(cursor, statement, None, context)


def _on_reset(dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState) -> None:
    # Back in the pool, the DBAPI connection is in its usual state again, for
    # whatever checks it out next (a raw connection expects a transaction).
    if record.info.get(_LEAN):
        record.info[_LEAN] = False
        if state.asyncio_safe and not state.terminate_only and dbapi_connection is not None:
            status = getattr(dbapi_connection, "info", None)
            if status is not None and status.transaction_status != _IDLE:
                # A transaction begun with its first write (psycopg), not ended:
                # autocommit can change only outside it. The pool's own
                # rollback, which follows this event, then has nothing to do.
                dbapi_connection.rollback()
            dbapi_connection.autocommit = False


def enable_lean_reads(engine: Engine) -> bool:
    """Make `engine`'s transactions begin at their first write; see the module docstring.

    Returns False, changing nothing, when the engine's default isolation is not
    READ COMMITTED or its driver is not asyncpg or psycopg.
    """
    if engine.dialect.driver not in ("asyncpg", "psycopg"):
        return False
    if engine.get_execution_options().get("isolation_level") is not None:
        return False
    if engine.dialect.default_isolation_level not in (None, "READ COMMITTED"):
        return False
    if not lean_reads_enabled(engine):
        # Dialect and pool events, not connection events: any connection event
        # makes SQLAlchemy dispatch every connection event on every statement.
        pipelined = can_pipeline_begin(engine.dialect)
        event.listen(
            engine, "do_execute", _before_execute_pipelined if pipelined else _before_execute
        )
        event.listen(engine, "do_executemany", _before_executemany)
        event.listen(engine, "do_execute_no_params", _before_execute_no_params)
        event.listen(engine, "reset", _on_reset)
    return True


def lean_reads_enabled(engine: Engine) -> bool:
    """Whether `enable_lean_reads` is in effect on `engine`."""
    return event.contains(engine, "do_execute", _before_execute) or event.contains(
        engine, "do_execute", _before_execute_pipelined
    )
