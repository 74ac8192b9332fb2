"""Outages and overload: a restart, a closed connection, an exhausted pool.

A private embedded PostgreSQL (its own data directory, never the shared
servers) is stopped and started under load; errors must be 503 JSON, never
500, and every acknowledged write must survive.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from plinth import Database, DatabaseSettings
from plinth.embedded import EmbeddedServer, start_embedded

ENV = "PLINTH_EMBEDDED_DIR"


class PrivateServer:
    """An embedded PostgreSQL of this module alone, which a test may restart."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.server = self._start(None)
        self.port = self.server.port

    def _start(self, port: int | None) -> EmbeddedServer:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(ENV, str(self.home / "pg"))
            return start_embedded(self.home / "project", port=port)

    def url(self, driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = self._start(self.port)

    def sql(self, statement: str, *params: object) -> list[tuple[object, ...]]:
        """Run one statement on a connection of its own, blocking the event loop."""
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            cursor = connection.execute(statement, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def terminate(self, pid: object) -> None:
        """Terminate a backend and wait until it has gone, blocking the event loop."""
        self.sql("SELECT pg_terminate_backend(%s)", pid)
        while self.sql("SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid):
            time.sleep(0.01)
        time.sleep(0.05)  # its socket closed too


@pytest.fixture(scope="module")
def private() -> Iterator[PrivateServer]:
    # Not under pytest's tmp_path: as root the server user could not enter it.
    home = Path(tempfile.mkdtemp(prefix="plinth-outages-"))
    os.chmod(home, 0o755)
    (home / "project").mkdir()
    try:
        yield PrivateServer(home)
    finally:
        EmbeddedServer(home / "pg" / "postgres18", 0, "", started_here=False).stop()
        shutil.rmtree(home, ignore_errors=True)


def settings(url: str, **overrides: object) -> DatabaseSettings:
    return DatabaseSettings.load(database_url=url, connect_retries=0, **overrides)


async def test_a_connection_the_server_closed_is_never_handed_out(
    private: PrivateServer,
) -> None:
    """Regression: "InternalClientError: cannot switch to state 12; another
    operation (2) is in progress" at the start of an outage.

    PostgreSQL tells an idle connection "FATAL: terminating connection" and
    closes it. asyncpg reads the message with no operation in progress, which
    leaves its protocol in an error state (2) until it reads the end of the
    stream, one event loop iteration later. The pool handed out the connection
    in between, and its next statement failed with that error (a 500).
    """
    database = Database(settings(private.url(), pool_size=1, max_overflow=0))
    await database.start()
    try:
        async with database.transaction() as session:
            pid = await session.scalar(select(_backend_pid()))
        # The pooled connection is idle. Terminate its backend while the event
        # loop is blocked: its FATAL message and end of stream wait in the socket.
        private.terminate(pid)
        await asyncio.sleep(0)  # the loop reads the FATAL message (after this task ran)
        await asyncio.sleep(0)  # ... and would read the end of the stream after it
        async with database.transaction() as session:
            assert await session.scalar(select(_backend_pid())) != pid
        pool = database.engine.pool
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await database.close()


def _backend_pid() -> object:
    from sqlalchemy import func

    return func.pg_backend_pid()
