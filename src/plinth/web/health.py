"""Liveness and readiness for load balancers and orchestrators.

Liveness says the process answers; it never touches the database, so a
database outage does not get healthy processes restarted. Readiness runs
``SELECT 1`` within a timeout, reports latency and pool usage, and checks that
the database is at the migration head: a replica whose schema is behind its
code should not receive traffic. A 503 carries a short reason and never a URL,
and tells an exhausted pool ("pool exhausted (15 of 15 in use)": the server
answers, this process is overloaded) from a server that does not answer
("database unreachable: ...").
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from plinth.db.database import Database
from plinth.errors import DatabaseBusyError, DatabaseStateError, DatabaseUnavailableError
from plinth.migrations.config import heads

__all__ = ["health_router", "readiness"]


@functools.cache
def _heads(migrations: Path) -> tuple[str, ...]:
    # Scripts do not change under a running process; read them once.
    return heads(migrations)


async def _current_revisions(database: Database) -> tuple[str, ...]:
    async with database.session() as session:
        exists = (await session.execute(text("SELECT to_regclass('alembic_version')"))).scalar()
        if exists is None:
            return ()
        rows = await session.execute(text("SELECT version_num FROM alembic_version"))
        return tuple(sorted(rows.scalars()))


def _pool(database: Database) -> dict[str, int] | None:
    """The pool in a reader's words: connections kept (``size``), ``in_use``,
    ``idle``, and how many of the ``max_overflow`` extra ones are in use."""
    try:
        pool: Any = database.engine.pool
    except DatabaseStateError:
        return None
    if not callable(getattr(pool, "size", None)):
        return None  # not a queue pool (NullPool, a test's StaticPool)
    max_overflow = getattr(pool, "_max_overflow", -1)
    return {
        "size": pool.size(),
        "in_use": pool.checkedout(),
        "idle": pool.checkedin(),
        # SQLAlchemy's overflow() counts down from -size until the pool is full.
        "overflow_in_use": max(0, pool.overflow()),
        "max_overflow": max_overflow,
    }


def _exhausted(database: Database) -> str | None:
    """ "pool exhausted (N of N in use)" when no connection can be checked out now."""
    pool = _pool(database)
    if pool is None or pool["max_overflow"] < 0:
        return None  # an unbounded pool is never exhausted
    capacity = pool["size"] + pool["max_overflow"]
    in_use = pool["in_use"]
    return f"pool exhausted ({in_use} of {capacity} in use)" if in_use >= capacity else None


def _busy(reason: str, database: Database) -> tuple[bool, dict[str, Any]]:
    return False, {"status": "unavailable", "reason": reason, "pool": _pool(database)}


async def readiness(database: Database, timeout: float = 2.0) -> tuple[bool, dict[str, Any]]:
    """Whether the app may take traffic, and the report that says why."""
    exhausted = _exhausted(database)
    if exhausted is not None:
        # The ping would wait for a free connection and time out like a dead server.
        return _busy(exhausted, database)
    try:
        ping = await database.ping(timeout)
    except (DatabaseUnavailableError, DatabaseStateError) as exc:
        exhausted = _exhausted(database)  # the pool may have filled up meanwhile
        if exhausted is not None or isinstance(exc, DatabaseBusyError):
            return _busy(exhausted or "pool exhausted", database)
        return False, {"status": "unavailable", "reason": f"database unreachable: {exc}"}
    report: dict[str, Any] = {
        "status": "ready",
        "database": {"latency_ms": ping.latency_ms, "server_version": ping.server_version},
        "pool": _pool(database),
    }
    if database.replicas is not None:
        # Reported, not required: reads fall back to the primary without them.
        report["replicas"] = database.replicas.report()
    if database.migrations is not None:
        head = sorted(_heads(database.migrations))
        current = list(await _current_revisions(database))
        report["migrations"] = {"current": current, "head": head, "at_head": current == head}
        if current != head:
            report["status"] = "unavailable"
            report["reason"] = f"database at revision {current or 'base'}, code expects {head}"
            return False, report
    return True, report


def health_router(
    database: Database, *, prefix: str = "/health", timeout: float = 2.0
) -> APIRouter:
    """``GET {prefix}/live`` and ``GET {prefix}/ready``."""
    router = APIRouter(prefix=prefix, tags=["health"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        ok, report = await readiness(database, timeout)
        return JSONResponse(report, status_code=200 if ok else 503)

    return router
