"""The engine: its arguments from the settings, and its first connection.

libpq spellings in the URL (``sslmode``, ``sslrootcert``, ...) are translated
here for asyncpg, which rejects them as keyword arguments. Start-up connects
with retries and exponential backoff, because a container often starts before
its database does; errors that no retry can fix (a wrong password, a missing
database) fail at once. `discard_dead_connections` keeps the pool from handing
out a connection that the server has already closed.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import ssl
from collections.abc import Mapping
from typing import Any

from sqlalchemy import URL, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from plinth.db.settings import (
    ASYNCPG_NUMBERS,
    DatabaseSettings,
    check_asyncpg_query,
    redact,
    server_options,
)
from plinth.driver_errors import TRY_LATER_MESSAGES, no_host_matches
from plinth.errors import ConfigurationError, DatabaseUnavailableError
from plinth.lifecycle import retry_with_backoff

__all__ = [
    "check_production_connection",
    "connect_with_retries",
    "discard_dead_connections",
    "engine_arguments",
    "peer_closed",
    "reason",
]

logger = logging.getLogger("plinth")

# Server answers that mean "try again later"; anything else with a SQLSTATE is final.
_TRANSIENT_SQLSTATES = {"57P03", "53300", "08000", "08001", "08006", "57P01"}


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


def _asyncpg_query(
    query: dict[str, Any], connect_args: dict[str, Any], server_settings: dict[str, str]
) -> None:
    """Move libpq spellings out of the URL's query into asyncpg's arguments
    (asyncpg.connect() takes no unknown keyword); refuse anything else."""
    check_asyncpg_query(query)
    if "application_name" in query:
        server_settings["application_name"] = str(query.pop("application_name"))
    if "options" in query:
        server_settings.update(server_options(str(query.pop("options"))))
    if "connect_timeout" in query:
        connect_args["timeout"] = float(query.pop("connect_timeout"))
    for key in ("command_timeout", "statement_cache_size"):
        if key in query:
            connect_args[key] = ASYNCPG_NUMBERS[key](query.pop(key))
    # host (several hosts), target_session_attrs and prepared_statement_cache_size:
    # SQLAlchemy's dialect passes (and converts) them itself.


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
        connect_args["timeout"] = settings.connect_timeout
        server_settings = {"application_name": settings.application_name}
        try:
            _asyncpg_query(query, connect_args, server_settings)
        except ValueError as exc:
            raise ConfigurationError(f"{settings.variable('database_url')} {exc}") from None
        if settings.statement_timeout is not None:
            server_settings["statement_timeout"] = str(settings.statement_timeout)
        connect_args["server_settings"] = server_settings
        if settings.pooler == "pgbouncer-transaction":
            # Named prepared statements live on one server connection; both caches off
            # (asyncpg's own and SQLAlchemy's adapter's), or statements go missing.
            connect_args["statement_cache_size"] = 0
            connect_args["prepared_statement_cache_size"] = 0
    else:
        # psycopg speaks libpq: sslmode and friends pass through untouched.
        connect_args["application_name"] = settings.application_name
        connect_args["connect_timeout"] = max(1, round(settings.connect_timeout))
        if settings.statement_timeout is not None:
            connect_args["options"] = f"-c statement_timeout={settings.statement_timeout}"
        if settings.pooler == "pgbouncer-transaction":
            connect_args["prepare_threshold"] = None  # never prepare by name
    options: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
        "pool_pre_ping": settings.pool_pre_ping,
        # A failing statement's parameters are request data: outside development they
        # reach neither logs nor exception messages ("[SQL parameters hidden ...]").
        "hide_parameters": settings.app_env != "development",
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
        if no_host_matches(exc):
            return True  # a failover in progress: the standby is not promoted yet
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate is not None:
            return sqlstate in _TRANSIENT_SQLSTATES
        if isinstance(exc, OperationalError) and not exc.connection_invalidated:
            # libpq (psycopg) reports a failed connection attempt without a SQLSTATE;
            # a refusal by the server itself ("FATAL: ...") is final unless it says "later".
            message = str(exc.orig)
            return "FATAL:" not in message or any(hint in message for hint in TRY_LATER_MESSAGES)
        return isinstance(exc, OperationalError | InterfaceError) and exc.connection_invalidated
    return False


def reason(exc: BaseException) -> str:
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


async def check_production_connection(engine: AsyncEngine) -> None:
    from plinth.db.security import inspect_connection

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
        reason=reason,
        error=DatabaseUnavailableError,
        catch=(OSError, TimeoutError, DBAPIError),
    )


def peer_closed(transport: Any) -> bool:
    """Whether the server has closed the TCP connection under `transport`
    although the event loop has not yet read the end of the stream.

    A zero-timeout poll (~1 µs), and a non-blocking ``recv(MSG_PEEK)`` only
    when something is waiting to be read: no round trip, nothing consumed.
    """
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    fd = sock.fileno()
    if fd < 0:
        return True
    if not _readable(fd):
        return False  # the usual case: an idle connection has nothing to read
    # A socket object on the same descriptor (detached below, so never closed);
    # asyncio's own wrapper refuses recv.
    peek = socket.socket(sock.family, sock.type, sock.proto, fileno=fd)
    try:
        return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True  # reset by the peer
    finally:
        peek.detach()


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        return bool(poll.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - no poll(2)


def _check_asyncpg_connection(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    # When PostgreSQL shuts down (or a backend is terminated) it sends an idle
    # connection "FATAL: terminating connection" and closes it. asyncpg reads
    # that message with no operation in progress and leaves its protocol in
    # an error state until it reads the end of the stream, one event loop
    # iteration later; a statement sent in between fails with
    # "InternalClientError: cannot switch to state 12; another operation (2)
    # is in progress". Raising DisconnectionError makes the pool discard this
    # connection and check out another (up to three times).
    driver = dbapi_connection.driver_connection
    if driver.is_closed() or peer_closed(getattr(driver, "_transport", None)):
        raise DisconnectionError("the server closed this pooled connection")


def discard_dead_connections(engine: Engine) -> bool:
    """Make `engine`'s pool discard, at checkout, connections the server closed.

    Costs one non-blocking system call per checkout, no round trip (unlike
    ``pool_pre_ping``). Returns False, changing nothing, unless the driver is
    asyncpg: psycopg only reads a server's message when it waits for a result,
    and reports a closed connection as a disconnect.
    """
    if engine.dialect.driver != "asyncpg":
        return False
    if not event.contains(engine, "checkout", _check_asyncpg_connection):
        event.listen(engine, "checkout", _check_asyncpg_connection)
    return True
