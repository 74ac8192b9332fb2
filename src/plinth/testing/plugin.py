"""Plinth's pytest plugin (registered through the ``pytest11`` entry point).

One PostgreSQL server per run: ``--plinth-url`` or ``TEST_DATABASE_URL``, else
the embedded server. Each app gets one test database per run, created and
migrated once from the app's own Alembic scripts. Each test then runs inside
an outer transaction that is rolled back afterwards; sessions join it through
savepoints (``join_transaction_mode="create_savepoint"``), so the code under
test may commit, and the next test still sees a clean database, for 1.2-1.5
times a bare ``BEGIN``/``ROLLBACK`` and 15-18 times less than ``create_all`` and
``drop_all`` per test (``benchmarks/RESULTS.md``).

An app's ``conftest.py`` says which app it tests::

    @pytest.fixture
    def plinth_app_dir() -> Path:
        return Path(__file__).parents[1]

and its tests take ``db_session`` (an `AsyncSession`) and ``client`` (an
``httpx.AsyncClient`` on the app, whose sessions run in the same
transaction). Async fixtures and tests share one event loop per session:
set ``asyncio_default_fixture_loop_scope`` and
``asyncio_default_test_loop_scope`` to ``session`` in the pytest config.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import URL
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from plinth.db.scratch import scratch_database
from plinth.db.settings import parse_database_url, redact
from plinth.project import AppSpec, find_app, start_announced, stop_announced
from plinth.testing.databases import TestDatabases
from plinth.testing.extra import async_fixture, missing_testing_extra

if TYPE_CHECKING:
    from plinth.embedded.postgres import EmbeddedServer
    from plinth.testing.citus import CitusCluster

__all__ = [
    "TestDatabases",
    "client",
    "db_connection",
    "db_session",
    "local_server_url",
    "plinth_app",
    "plinth_citus",
    "plinth_databases",
    "plinth_each_server",
    "plinth_pgbouncer",
    "plinth_scratch",
    "plinth_server",
    "s3_server",
]

LOCAL_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("plinth", "Plinth: PostgreSQL for tests")
    group.addoption(
        "--plinth-url",
        dest="plinth_url",
        default=None,
        help="PostgreSQL server for the tests (default: $TEST_DATABASE_URL, else embedded).",
    )


def _configured_url(config: pytest.Config) -> URL | None:
    option = config.getoption("plinth_url")
    raw = option if option is not None else os.environ.get("TEST_DATABASE_URL")
    return parse_database_url(raw)


def pytest_report_header(config: pytest.Config) -> str:
    missing = missing_testing_extra()
    if missing is not None:
        return f"plinth: fixtures off: {missing}"
    url = _configured_url(config)
    where = f"server {redact(url)}" if url is not None else "embedded PostgreSQL 18"
    return f"plinth: {where}, one migrated database per app, a rolled-back transaction per test"


def local_server_url() -> URL | None:
    """The local PostgreSQL on 127.0.0.1:5432 (CI's PostgreSQL 15), if it answers."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return make_url(LOCAL_SERVER)
    except OSError:
        return None


@pytest.fixture(params=["test-server", "local-5432"])
def plinth_each_server(request: pytest.FixtureRequest, plinth_server: URL) -> URL:
    """Each server a schema test should pass on: the test server, then the local
    PostgreSQL (15 in CI) when it answers and is a different server."""
    if request.param == "test-server":
        return plinth_server
    local = local_server_url()
    if local is None:
        pytest.skip("no PostgreSQL answers on 127.0.0.1:5432")
    if (plinth_server.host, plinth_server.port) == (local.host, local.port):
        pytest.skip("the test server already is the one on 127.0.0.1:5432")
    return local


@async_fixture(loop_scope="session")
async def plinth_scratch(plinth_each_server: URL) -> AsyncIterator[AsyncConnection]:
    """A connection to a new, empty database on each server; dropped afterwards."""
    async with (
        scratch_database(plinth_each_server, "scratch") as engine,
        engine.connect() as connection,
    ):
        yield connection


@pytest.fixture(scope="session")
def plinth_server(pytestconfig: pytest.Config) -> Iterator[URL]:
    """URL of the server's maintenance database, for creating test databases."""
    url = _configured_url(pytestconfig)
    if url is not None:
        yield url
        return
    server: EmbeddedServer = start_announced(pytestconfig.rootpath)
    try:
        yield make_url(server.url)
    finally:
        stop_announced(server)


@async_fixture(scope="session", loop_scope="session")
async def plinth_databases(plinth_server: URL) -> AsyncIterator[TestDatabases]:
    """The registry of per-app test databases for this run."""
    databases = TestDatabases(plinth_server)
    try:
        yield databases
    finally:
        await databases.close()


@pytest.fixture
def plinth_app_dir() -> Path:
    """The app under test; override in the app's conftest.py."""
    raise pytest.UsageError(
        "define a `plinth_app_dir` fixture in your conftest.py returning the app directory"
    )


@pytest.fixture
def plinth_app(plinth_app_dir: Path) -> AppSpec:
    """The app under test."""
    return find_app(plinth_app_dir)


@async_fixture(loop_scope="session")
async def db_connection(
    plinth_app: AppSpec, plinth_databases: TestDatabases
) -> AsyncIterator[AsyncConnection]:
    """A connection inside an outer transaction that is rolled back after the test.

    The app's `Database` is bound to it for the test, so its FastAPI
    dependency and every session it makes use this transaction.
    """
    engine = await plinth_databases.engine_for(plinth_app)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            async with plinth_app.database.bind(connection):
                yield connection
        finally:
            await transaction.rollback()


@async_fixture(loop_scope="session")
async def db_session(db_connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """An `AsyncSession` in the test's transaction; commits become savepoints."""
    async with AsyncSession(
        bind=db_connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    ) as session:
        yield session


@async_fixture(loop_scope="session")
async def client(
    plinth_app: AppSpec, db_connection: AsyncConnection
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app (in-process), its database bound to the test."""
    transport = httpx.ASGITransport(app=plinth_app.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture(scope="session")
def plinth_pgbouncer(plinth_server: URL) -> Iterator[URL]:
    """PgBouncer in transaction mode (10 server connections) in front of the test
    server: its URL reaches any of the server's databases by name. Skipped, naming
    the install command, where pgbouncer is not installed."""
    from plinth.testing.pgbouncer import INSTALL, find_pgbouncer, start_pgbouncer

    if find_pgbouncer() is None:
        pytest.skip(f"pgbouncer is not installed: {INSTALL}")
    # Not under pytest's tmp_path (mode 0700 above it): PgBouncer may run as another user.
    directory = Path(tempfile.mkdtemp(prefix="plinth-pgbouncer-"))
    bouncer = start_pgbouncer(plinth_server, directory)
    try:
        yield bouncer.url
    finally:
        bouncer.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def plinth_citus() -> Iterator[CitusCluster]:
    """A Citus coordinator and two workers on loopback (Debian's PostgreSQL 15 with
    Citus built by shared/citus/build.sh). Skipped, naming the build command,
    where Citus is not installed."""
    from plinth.testing.citus import INSTALL, find_citus, start_citus

    if find_citus() is None:
        pytest.skip(f"Citus is not installed: {INSTALL}")
    directory = Path(tempfile.mkdtemp(prefix="plinth-citus-"))
    cluster = start_citus(directory)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of a real S3-compatible server on loopback (moto, in the dev extra)."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
