"""Outages and overload: a restart, a closed connection, an exhausted pool.

A private embedded PostgreSQL (its own data directory, never the shared
servers) is stopped and started under load; errors must be 503 JSON, never
500, and every acknowledged write must survive.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import String, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plinth import Database, DatabaseSettings, exception_handlers, health_router
from plinth.driver_errors import translate_outage
from plinth.embedded import EmbeddedServer, start_embedded
from plinth.errors import DatabaseBusyError, DatabaseUnavailableError

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


async def test_a_connection_closed_in_the_middle_of_a_unit_of_work_is_a_503(
    private: PrivateServer,
) -> None:
    """The same race between two statements of one unit of work: nothing can
    save that request (its connection is gone), but it is a lost connection,
    a 503, and the pool replaces the connection."""
    database = Database(settings(private.url(), pool_size=1, max_overflow=0))
    await database.start()
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        pids: list[int] = []
        with pytest.raises(DBAPIError) as caught:
            await _read_then_write_across_a_termination(database, private, pids)
        assert "another operation (2) is in progress" in str(caught.value)
        assert caught.value.connection_invalidated
        assert isinstance(translate_outage(caught.value), DatabaseUnavailableError)
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with database.transaction() as session:
            assert await session.scalar(select(_backend_pid())) != pids[0]
    finally:
        await database.close()


async def _read_then_write_across_a_termination(
    database: Database, private: PrivateServer, pids: list[int]
) -> None:
    async with database.transaction() as session:
        pids.append(await session.scalar(select(_backend_pid())))
        private.terminate(pids[0])
        await asyncio.sleep(0)  # the loop reads the FATAL message
        await asyncio.sleep(0)
        session.add(Item(key="lost"))
        await session.flush()


def _backend_pid() -> Any:
    return func.pg_backend_pid()


# --- a tiny app on plinth.Database, served by uvicorn on loopback -----------------


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "outage_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)


def tiny_app(database: Database) -> FastAPI:
    app = FastAPI(lifespan=database.lifespan, exception_handlers=exception_handlers)
    app.include_router(health_router(database, timeout=1.0))
    # The default, not Annotated: a local alias is no annotation under `from __future__`.
    unit_of_work = database.depends

    @app.post("/items/{key}", status_code=201)
    async def create(key: str, session: AsyncSession = unit_of_work) -> dict[str, int]:
        item = Item(key=key)
        session.add(item)
        await session.flush()
        return {"id": item.id}

    @app.get("/items/count")
    async def count(session: AsyncSession = unit_of_work) -> dict[str, int]:
        return {"count": await session.scalar(select(func.count()).select_from(Item)) or 0}

    return app


@asynccontextmanager
async def served(database: Database) -> AsyncIterator[str]:
    """Serve the tiny app with uvicorn on 127.0.0.1, in this event loop."""
    async with database.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(tiny_app(database), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def is_503(response: httpx.Response, detail: str) -> bool:
    """A handled 503: JSON, Retry-After, and the keep-alive connection left open."""
    return (
        response.status_code == 503
        and response.headers.get("content-type") == "application/json"
        and response.json() == {"detail": detail}
        and response.headers.get("retry-after") == "1"
        and response.headers.get("connection") != "close"
    )


# --- a restart under concurrent writes --------------------------------------------


@dataclass
class Load:
    requests: int = 0
    acknowledged: set[str] = field(default_factory=set)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    unexpected: list[str] = field(default_factory=list)
    first_success_after: float | None = None
    back_at: float | None = None
    recovered: asyncio.Event = field(default_factory=asyncio.Event)


async def _writer(client: httpx.AsyncClient, name: str, load: Load, until: float) -> None:
    number = 0
    while time.monotonic() < until:
        number += 1
        key = f"{name}-{number}"
        load.requests += 1
        try:
            response = await client.post(f"/items/{key}")
        except httpx.TransportError as exc:  # a dropped connection: never expected
            load.statuses[type(exc).__name__] += 1
            continue
        load.statuses[str(response.status_code)] += 1
        if response.is_success:
            load.acknowledged.add(key)
            if load.back_at is not None and load.first_success_after is None:
                load.first_success_after = time.monotonic() - load.back_at
                load.recovered.set()
            await asyncio.sleep(0.005)
        else:
            if not is_503(response, "database unavailable"):
                load.unexpected.append(f"{response.status_code} {response.headers} {response.text}")
            await asyncio.sleep(0.02)  # bounded: ~50 requests/s per writer while down


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_restart_under_writes_is_503_then_recovers_and_loses_nothing(
    private: PrivateServer, driver: str
) -> None:
    database = Database(
        settings(private.url(driver), pool_size=4, max_overflow=4, pool_timeout=2.0)
    )
    await database.start()
    load = Load()
    try:
        async with served(database) as base_url:
            limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
            async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as client:
                until = time.monotonic() + 15  # a hard bound; ended early below
                writers = [
                    asyncio.create_task(_writer(client, f"w{n}", load, until)) for n in range(8)
                ]
                await asyncio.sleep(0.7)
                assert load.acknowledged, load.statuses
                await asyncio.to_thread(private.stop)
                down_at = time.monotonic()
                await asyncio.sleep(1.0)
                await asyncio.to_thread(private.start)
                load.back_at = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(load.recovered.wait(), until - time.monotonic())
                await asyncio.sleep(0.5)  # steady again
                stopped_at = time.monotonic()
                for writer in writers:
                    writer.cancel()
                await asyncio.gather(*writers, return_exceptions=True)
                ready = await client.get("/health/ready")
            async with database.transaction() as session:
                stored = set((await session.scalars(select(Item.key))).all())
            idle = database.engine.pool.checkedout()  # type: ignore[attr-defined]
    finally:
        await database.close()
    lost = load.acknowledged - stored
    assert load.back_at is not None
    first = load.first_success_after
    print(
        f"\n{driver} restart: requests {load.requests}, acknowledged {len(load.acknowledged)}, "
        f"lost {len(lost)}, errors by status "
        f"{ {k: v for k, v in load.statuses.items() if k != '201'} }, "
        f"down {load.back_at - down_at:.2f} s, first success "
        f"{'never' if first is None else f'{first:.3f} s'} after the server was back; "
        f"load ran {stopped_at - down_at:.2f} s after the stop"
    )
    assert not lost
    assert set(load.statuses) <= {"201", "503"}, load.statuses  # never 500, never dropped
    assert not load.unexpected, load.unexpected[:3]  # every 503 JSON, Retry-After, keep-alive
    assert load.statuses["503"] > 0  # the outage was seen
    assert first is not None
    assert first < 5
    assert ready.status_code == 200, ready.text
    assert idle == 0


# --- an exhausted pool ------------------------------------------------------------


async def _http(
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter], method: str, path: str
) -> tuple[int, dict[str, str], Any]:
    """One request on an open keep-alive connection (raw HTTP/1.1: no reconnect)."""
    reader, writer = stream
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status_line, *lines = head.strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_an_exhausted_pool_is_a_quick_503_and_readiness_says_so(
    private: PrivateServer, driver: str
) -> None:
    database = Database(
        settings(private.url(driver), pool_size=1, max_overflow=0, pool_timeout=0.3)
    )
    await database.start()
    try:
        async with served(database) as base_url:
            port = int(base_url.rsplit(":", 1)[1])
            stream = await asyncio.open_connection("127.0.0.1", port)
            try:
                async with database.engine.connect() as held:
                    await held.execute(text("SELECT 1"))  # the pool's only connection
                    started = time.monotonic()
                    status, headers, body = await _http(stream, "GET", "/items/count")
                    busy_after = time.monotonic() - started
                    assert (status, body) == (503, {"detail": "database busy"})
                    assert headers["retry-after"] == "1"
                    assert headers.get("connection") != "close"
                    # The same keep-alive connection answers the next request.
                    started = time.monotonic()
                    status, _, report = await _http(stream, "GET", "/health/ready")
                    ready_after = time.monotonic() - started
                    assert status == 503
                    assert report["reason"] == "pool exhausted (1 of 1 in use)"
                    assert report["pool"] == {
                        "size": 1,
                        "in_use": 1,
                        "idle": 0,
                        "overflow_in_use": 0,
                        "max_overflow": 0,
                    }
                status, _, body = await _http(stream, "GET", "/items/count")
                assert (status, body) == (200, {"count": 0})
            finally:
                stream[1].close()
            assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await database.close()
    print(
        f"\n{driver} pool exhausted: 503 after {busy_after:.3f} s (DB_POOL_TIMEOUT 0.3 s), "
        f"readiness after {ready_after:.3f} s"
    )
    assert 0.3 <= busy_after < 1.5
    assert ready_after < 0.5  # told at once, not after the ping's timeout


def test_other_errors_stay_server_errors() -> None:
    assert translate_outage(FileNotFoundError("x")) is None
    refused = ConnectionRefusedError("an HTTP client of the app, not the database")
    with contextlib.suppress(ConnectionRefusedError):
        raise refused
    assert refused.__traceback__ is not None
    assert translate_outage(refused) is None
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    assert isinstance(translate_outage(PoolTimeoutError("x")), DatabaseBusyError)
    assert isinstance(translate_outage(DatabaseUnavailableError("x")), DatabaseUnavailableError)
