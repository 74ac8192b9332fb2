"""The `Database`: one object that owns the async engine and its sessions.

Its lifecycle is explicit (new → started → closed) and misuse names the
state; the engine it builds comes from `plinth.db.engine`. Its unit of work
(`transaction`, and `get_db` / `depends` for FastAPI) commits before the
response is sent; `transaction(tenant=...)` and `tenant_depends` bind it to a
tenant for row-level security (`plinth.db.tenancy`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends
from sqlalchemy import URL, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from plinth.db.engine import (
    check_production_connection,
    connect_with_retries,
    discard_dead_connections,
    engine_arguments,
    reason,
)
from plinth.db.failover import FailoverSession
from plinth.db.lean_reads import enable_lean_reads
from plinth.db.replicas import Replicas, RoutingSession
from plinth.db.settings import DatabaseSettings, redact
from plinth.db.tenancy import TENANT_SETTING, bind_tenant
from plinth.errors import DatabaseBusyError, DatabaseStateError, DatabaseUnavailableError
from plinth.lifecycle import Ping, Service, State, elapsed_ms, run_to_completion

if TYPE_CHECKING:
    from plinth.embedded.postgres import EmbeddedServer

__all__ = ["Database"]

logger = logging.getLogger("plinth")


class Database(Service):
    """Owns the async engine and session factory of one PostgreSQL database.

    Use as the FastAPI lifespan, or ``async with database:``. Sessions come from
    `transaction` (a unit of work) or `session`; the FastAPI dependency is
    `depends`. Not safe to share one `AsyncSession` between concurrent tasks.
    """

    def __init__(
        self,
        settings: DatabaseSettings | None = None,
        *,
        migrations: Path | None = None,
    ) -> None:
        self.settings = settings if settings is not None else DatabaseSettings.load()
        """The settings in use: those given, else `DatabaseSettings.load()` (the environment)."""
        self.migrations = migrations
        """The app's ``migrations/`` folder; `health_router` then reports whether the
        database is at head (``/health/ready`` answers 503 until it is)."""
        self._state = State.NEW
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._embedded: EmbeddedServer | None = None
        self._bound: async_sessionmaker[AsyncSession] | None = None
        self._bound_connection: AsyncConnection | None = None
        self.depends: Any = Depends(self.get_db, scope="function")
        """Use as ``Annotated[AsyncSession, database.depends]``: commits before the response."""
        self.depends_primary: Any = Depends(self.get_primary_db, scope="function")
        """`depends`, on the primary even for reads (with read replicas)."""
        self._replicas: Replicas | None = None

    def __repr__(self) -> str:
        return f"<Database {self.settings.redacted_url()} {self._state.value}>"

    @property
    def url(self) -> URL:
        """The URL in use (resolved to the embedded server's once started)."""
        if self._engine is not None:
            return self._engine.url
        if self.settings.database_url is None:
            raise DatabaseStateError("DATABASE_URL is unset and the embedded server is not started")
        return self.settings.database_url

    @property
    def engine(self) -> AsyncEngine:
        """The engine; raises `DatabaseStateError` unless started."""
        if self._engine is None:
            raise DatabaseStateError(
                f"Database is {self._state.value}: call `await database.start()` first "
                "(FastAPI does it when the app uses `lifespan=database.lifespan`)"
            )
        return self._engine

    @property
    def read_bind(self) -> AsyncEngine | AsyncConnection:
        """Where reads outside a unit of work go (`plinth.Reads`): a healthy read
        replica when there are any, else the engine; in tests, the connection
        that `bind` routes everything through."""
        if self._bound_connection is not None:
            return self._bound_connection
        replica = self._replicas.choose() if self._replicas is not None else None
        return replica if replica is not None else self.engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """The session factory, or the test binding set by `bind`."""
        if self._bound is not None:
            return self._bound
        if self._sessions is None:
            self.engine  # raises the precise state error  # noqa: B018
        assert self._sessions is not None
        return self._sessions

    async def start(self) -> None:
        """Create the engine and prove it connects, retrying transient failures."""
        if self._state is State.STARTED:
            return
        if self._state is State.CLOSED:
            raise DatabaseStateError("Database is closed; create a new one to reconnect")
        url = self.settings.database_url
        if url is None:
            url = await self._start_embedded()
        bound_url, options = engine_arguments(self.settings, url)
        engine = create_async_engine(bound_url, **options)
        try:
            await connect_with_retries(
                engine, self.settings.connect_retries, self.settings.retry_delay
            )
            if self.settings.app_env == "production":
                await check_production_connection(engine)
        except BaseException:
            await engine.dispose()
            raise
        # Reads outside a write cost one round trip, not BEGIN/SELECT/ROLLBACK.
        enable_lean_reads(engine.sync_engine)
        # Never hand out a connection the server has closed (a restart, a failover).
        discard_dead_connections(engine.sync_engine)
        self._engine = engine
        # A unit of work's first read whose connection died runs once more (plinth.db.failover).
        self._sessions = async_sessionmaker(
            engine, expire_on_commit=False, sync_session_class=FailoverSession
        )
        if self.settings.replica_urls:
            await self._start_replicas(engine)
        self._state = State.STARTED
        logger.info("connected to %s", redact(engine.url))

    async def _start_replicas(self, primary: AsyncEngine) -> None:
        engines = []
        for url in self.settings.replica_urls:
            bound_url, options = engine_arguments(self.settings, url)
            replica = create_async_engine(bound_url, **options)
            discard_dead_connections(replica.sync_engine)
            engines.append(replica)
        self._replicas = Replicas(
            engines,
            max_lag=self.settings.replica_max_lag,
            interval=self.settings.replica_check_interval,
        )
        await self._replicas.check()
        for replica in engines:
            # Lean reads need the server's default isolation, known once connected:
            # a replica that was down at start reads with BEGIN/ROLLBACK until restart.
            if hasattr(replica.dialect, "default_isolation_level"):
                enable_lean_reads(replica.sync_engine)
        self._replicas.start()
        self._sessions = async_sessionmaker(
            primary,
            expire_on_commit=False,
            sync_session_class=RoutingSession,
            info={"plinth.primary": primary.sync_engine, "plinth.replicas": self._replicas},
        )

    @property
    def replicas(self) -> Replicas | None:
        """The read replicas (``DATABASE_REPLICA_URLS``), or None."""
        return self._replicas

    async def _start_embedded(self) -> URL:
        from sqlalchemy.engine import make_url

        from plinth.db.scratch import app_database_name, ensure_database
        from plinth.embedded.postgres import start_embedded

        if self.settings.app_env == "production":  # pragma: no cover - settings forbid it
            raise DatabaseStateError("DATABASE_URL is required in production")
        # The app's own database on its project's server: the app's directory
        # (from its migrations) and the server are found as the CLI finds them.
        app_dir = self.migrations.parent if self.migrations is not None else Path.cwd()
        self._embedded = await asyncio.to_thread(start_embedded, app_dir)
        url = make_url(self._embedded.url)
        if self.migrations is not None:
            url = await ensure_database(url, app_database_name(app_dir))
        logger.warning("DATABASE_URL unset: using embedded PostgreSQL at %s", redact(url))
        return url

    async def close(self) -> None:
        """Dispose of the pool (and release the embedded server, if it used one)."""
        if self._replicas is not None:
            await self._replicas.close()
            self._replicas = None
        if self._engine is not None:
            await self._engine.dispose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.release)
        self._engine = self._sessions = None
        self._state = State.CLOSED

    def session(self) -> AsyncSession:
        """A new session; the caller commits. Prefer `transaction`."""
        return self.sessionmaker()

    def transaction(
        self,
        *,
        primary: bool = False,
        tenant: object | None = None,
        setting: str = TENANT_SETTING,
    ) -> AbstractAsyncContextManager[AsyncSession]:
        """A unit of work: commit on success, roll back on any exception.

        With read replicas, it reads on a replica until it writes; ``primary=True``
        keeps it on the primary from the first statement (read-your-writes).

        With `tenant`, each transaction of the unit of work begins with
        ``set_config(setting, tenant, true)``, which the row-level security
        policies of `plinth.ddl.tenant_isolation` read; its reads then run in
        that transaction, not as lean reads (`plinth.db.tenancy`).
        """
        session = self._open(primary)
        if tenant is not None:
            bind_tenant(session, tenant, setting)
        return _UnitOfWork(session)

    def _open(self, primary: bool) -> AsyncSession:
        if primary and self._replicas is not None and self._bound is None:
            return self.sessionmaker(info={"plinth.on_primary": True})
        return self.sessionmaker()

    def tenant_depends(self, tenant: Callable[..., Any], *, setting: str = TENANT_SETTING) -> Any:
        """A FastAPI dependency like `depends`, bound to the tenant that the
        dependency `tenant` returns (e.g. `plinth.web.tenant_header`)::

            Session = Annotated[AsyncSession, database.tenant_depends(tenant_header())]

        A request whose tenant dependency fails (a missing or malformed
        header: 422) never reaches the database.
        """

        async def tenant_db(tenant_id: Any = Depends(tenant)) -> AsyncIterator[AsyncSession]:
            async with self.transaction(tenant=tenant_id, setting=setting) as session:
                yield session

        return Depends(tenant_db, scope="function")

    async def get_db(self) -> AsyncIterator[AsyncSession]:
        """The unit of work of `transaction`, as a FastAPI dependency: use it
        through `depends`, so that the commit precedes the response.

        The commit (or the rollback) and the close run to their end even if the
        caller is cancelled meanwhile: an ASGI server's or a timeout's
        cancellation would otherwise stop them halfway.
        """
        async with _UnitOfWork(self.sessionmaker()) as session:
            yield session

    async def get_primary_db(self) -> AsyncIterator[AsyncSession]:
        """`get_db` on the primary from its first statement: use it through
        `depends_primary` where a request must read what an earlier one wrote."""
        async with _UnitOfWork(self._open(primary=True)) as session:
            yield session

    @asynccontextmanager
    async def bind(self, connection: AsyncConnection) -> AsyncIterator[None]:
        """Route every session through `connection`, in savepoints (for tests).

        The connection's outer transaction stays open, so whatever the code
        under test commits is rolled back when the caller rolls it back.
        """
        self._bound = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        self._bound_connection = connection
        try:
            yield
        finally:
            self._bound = None
            self._bound_connection = None

    async def ping(self, timeout: float = 2.0) -> Ping:
        """Run ``SELECT 1`` within `timeout` seconds; raise `DatabaseUnavailableError`
        (`DatabaseBusyError` when no pooled connection came free in time)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout), self.sessionmaker() as session:
                # A plain read: one round trip, no BEGIN/ROLLBACK (plinth.db.lean_reads).
                version = await session.scalar(select(func.current_setting("server_version")))
        except PoolTimeoutError as exc:
            raise DatabaseBusyError("no pooled connection came free in time") from exc
        except (TimeoutError, OSError, DBAPIError) as exc:
            raise DatabaseUnavailableError(reason(exc)) from exc
        return Ping(elapsed_ms(started), str(version).split()[0])


class _UnitOfWork:
    """Commit and close on success, close (roll back) on any exception; both run
    to their end under cancellation, in one greenlet switch where they can."""

    __slots__ = ("session",)

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def __aenter__(self) -> AsyncSession:
        return self.session

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            await run_to_completion(self.session.close())  # rolls back
        else:
            # One greenlet switch for both, where AsyncSession's commit and close take two.
            await run_to_completion(self.session.run_sync(_commit_and_close))


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    finally:
        session.close()
