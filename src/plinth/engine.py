"""The `Database`: one object that owns the async engine and its sessions.

Its lifecycle is explicit (new → started → closed) and misuse names the
state. Start-up connects with retries and exponential backoff, because a
container often starts before its database does; errors that no retry can
fix (a wrong password, a missing database) fail at once.

libpq spellings in the URL (``sslmode``, ``sslrootcert``, ...) are translated
here for asyncpg, which rejects them as keyword arguments.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends
from sqlalchemy import URL, func, select, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from plinth.errors import ConfigurationError, DatabaseStateError, DatabaseUnavailableError
from plinth.lifecycle import (
    Ping,
    Service,
    State,
    elapsed_ms,
    retry_with_backoff,
    run_to_completion,
)
from plinth.session import enable_lean_reads
from plinth.settings import DatabaseSettings, redact

if TYPE_CHECKING:
    from plinth.embedded import EmbeddedServer

__all__ = ["Database", "Ping", "engine_arguments"]

logger = logging.getLogger("plinth")

# Server answers that mean "try again later"; anything else with a SQLSTATE is final.
_TRANSIENT_SQLSTATES = {"57P03", "53300", "08000", "08001", "08006", "57P01"}
# The same conditions as libpq words them (57P03, 53300), for psycopg's SQLSTATE-less errors.
_TRANSIENT_FATAL = ("database system is", "too many clients", "connection slots are reserved")


def _ssl_context(query: Mapping[str, Any]) -> ssl.SSLContext | str:
    mode = query["sslmode"]
    if mode in ("disable", "allow", "prefer", "require") and "sslrootcert" not in query:
        return str(mode)
    context = ssl.create_default_context(cafile=query.get("sslrootcert"))
    if mode in ("require", "verify-ca"):
        context.check_hostname = False
    if mode == "require" and "sslrootcert" not in query:
        context.verify_mode = ssl.CERT_NONE
    if "sslcert" in query:
        context.load_cert_chain(query["sslcert"], query.get("sslkey"))
    return context


def engine_arguments(settings: DatabaseSettings, url: URL) -> tuple[URL, dict[str, Any]]:
    """Return the URL and `create_async_engine` keyword arguments for `settings`.

    Pure: builds no engine, so it is cheap to test for every driver.
    """
    url = settings.with_driver(url)
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    if url.drivername == "postgresql+asyncpg":
        ssl_keys = ("sslmode", "sslrootcert", "sslcert", "sslkey")
        if "sslmode" in query:
            connect_args["ssl"] = _ssl_context(query)
        for key in ssl_keys:
            query.pop(key, None)
        server_settings = {"application_name": settings.application_name}
        if settings.statement_timeout is not None:
            server_settings["statement_timeout"] = str(settings.statement_timeout)
        connect_args["server_settings"] = server_settings
        connect_args["timeout"] = settings.connect_timeout
    else:
        # psycopg speaks libpq: sslmode and friends pass through untouched.
        connect_args["application_name"] = settings.application_name
        connect_args["connect_timeout"] = max(1, round(settings.connect_timeout))
        if settings.statement_timeout is not None:
            connect_args["options"] = f"-c statement_timeout={settings.statement_timeout}"
    options: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
        "pool_pre_ping": settings.pool_pre_ping,
        "connect_args": connect_args,
    }
    extra = dict(settings.engine_options)
    connect_args.update(extra.pop("connect_args", {}))
    options.update(extra)
    return url.set(query=query), options


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, OSError | asyncio.TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate is not None:
            return sqlstate in _TRANSIENT_SQLSTATES
        if isinstance(exc, OperationalError) and not exc.connection_invalidated:
            # libpq (psycopg) reports a failed connection attempt without a SQLSTATE;
            # a refusal by the server itself ("FATAL: ...") is final unless it says "later".
            message = str(exc.orig)
            return "FATAL:" not in message or any(hint in message for hint in _TRANSIENT_FATAL)
        return isinstance(exc, OperationalError | InterfaceError) and exc.connection_invalidated
    return False


def _reason(exc: BaseException) -> str:
    """A one-line, credential-free reason for a connection failure."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig or exc
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Driver messages name the user and database but never the password.
    return message


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
        self.migrations = migrations
        self._state = State.NEW
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._embedded: EmbeddedServer | None = None
        self._bound: async_sessionmaker[AsyncSession] | None = None
        self.depends: Any = Depends(self.get_db, scope="function")
        """Use as ``Annotated[AsyncSession, database.depends]``: commits before the response."""

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
                await _check_production_connection(engine)
        except BaseException:
            await engine.dispose()
            raise
        # Reads outside a write cost one round trip, not BEGIN/SELECT/ROLLBACK.
        enable_lean_reads(engine.sync_engine)
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._state = State.STARTED
        logger.info("connected to %s", redact(engine.url))

    async def _start_embedded(self) -> URL:
        from sqlalchemy.engine import make_url

        from plinth.embedded import start_embedded

        if self.settings.app_env == "production":  # pragma: no cover - settings forbid it
            raise DatabaseStateError("DATABASE_URL is required in production")
        self._embedded = await asyncio.to_thread(start_embedded, Path.cwd())
        logger.warning("DATABASE_URL unset: using embedded PostgreSQL at %s", self._embedded.url)
        return make_url(self._embedded.url)

    async def close(self) -> None:
        """Dispose of the pool (and release the embedded server, if it used one)."""
        if self._engine is not None:
            await self._engine.dispose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.release)
        self._engine = self._sessions = None
        self._state = State.CLOSED

    def session(self) -> AsyncSession:
        """A new session; the caller commits. Prefer `transaction`."""
        return self.sessionmaker()

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A unit of work: commit on success, roll back on any exception."""
        return asynccontextmanager(self.get_db)()

    async def get_db(self) -> AsyncIterator[AsyncSession]:
        """The unit of work of `transaction`, as a FastAPI dependency: use it
        through `depends`, so that the commit precedes the response.

        The commit (or the rollback) and the close run to their end even if the
        caller is cancelled meanwhile: an ASGI server's or a timeout's
        cancellation would otherwise stop them halfway.
        """
        session = self.sessionmaker()
        try:
            yield session
        except BaseException:
            await run_to_completion(session.close())  # rolls back
            raise
        # One greenlet switch for both, where AsyncSession's commit and close take two.
        await run_to_completion(session.run_sync(_commit_and_close))

    @asynccontextmanager
    async def bind(self, connection: AsyncConnection) -> AsyncIterator[None]:
        """Route every session through `connection`, in savepoints (for tests).

        The connection's outer transaction stays open, so whatever the code
        under test commits is rolled back when the caller rolls it back.
        """
        self._bound = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield
        finally:
            self._bound = None

    async def ping(self, timeout: float = 2.0) -> Ping:
        """Run ``SELECT 1`` within `timeout` seconds; raise `DatabaseUnavailableError`."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout), self.sessionmaker() as session:
                # A plain read: one round trip, no BEGIN/ROLLBACK (plinth.session).
                version = await session.scalar(select(func.current_setting("server_version")))
        except (TimeoutError, OSError, DBAPIError) as exc:
            raise DatabaseUnavailableError(_reason(exc)) from exc
        return Ping(elapsed_ms(started), str(version).split()[0])


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    finally:
        session.close()


async def _check_production_connection(engine: AsyncEngine) -> None:
    from plinth.security import inspect_connection

    async with engine.connect() as connection:
        security = await inspect_connection(connection)
    if not security.ssl:
        raise ConfigurationError(
            f"the connection to {redact(engine.url)} is not encrypted (pg_stat_ssl), although "
            "APP_ENV=production requires SSL: check the server's ssl setting"
        )
    if security.excess_privileges:
        logger.warning(
            "role %r has %s; the app needs only SELECT/INSERT/UPDATE/DELETE on its tables",
            security.role,
            ", ".join(security.excess_privileges),
        )


async def connect_with_retries(engine: AsyncEngine, retries: int, delay: float) -> None:
    """Open and close one connection, retrying transient failures with backoff."""

    async def attempt() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    await retry_with_backoff(
        attempt,
        retries=retries,
        delay=delay,
        target=redact(engine.url),
        transient=_is_transient,
        reason=_reason,
        error=DatabaseUnavailableError,
        catch=(OSError, TimeoutError, DBAPIError),
    )
