"""Database settings, read from the environment and `.env`.

One `BaseSettings` class for the database concern. The URL is parsed once,
here, into a SQLAlchemy `URL` whose `repr` masks the password, and every
error this module raises names the variable, never its value.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from plinth.errors import ConfigurationError
from plinth.settings import AppEnv, PlinthSettings

__all__ = [
    "DatabaseSettings",
    "check_asyncpg_query",
    "hosts",
    "parse_database_url",
    "redact",
    "server_options",
]

DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
}
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
ENCRYPTED_SSL_MODES = ("require", "verify-ca", "verify-full")
# DATABASE_URL query options with asyncpg, which refuses libpq's spellings as
# keyword arguments; `plinth.db.engine` translates each. psycopg hands the query
# to libpq, which knows its own options.
ASYNCPG_NUMBERS = {
    "command_timeout": float,
    "connect_timeout": float,
    "prepared_statement_cache_size": int,
    "statement_cache_size": int,
}
ASYNCPG_QUERY_OPTIONS = (
    *sorted(("application_name", "host", "options", "target_session_attrs", *ASYNCPG_NUMBERS)),
    *("sslmode", "sslrootcert", "sslcert", "sslkey"),
)
# What SQLAlchemy's asyncpg dialect takes from connect_args besides asyncpg.connect's own.
_SQLALCHEMY_ASYNCPG_ARGS = ("async_creator_fn", "prepared_statement_cache_size",
                            "prepared_statement_name_func")  # fmt: skip


def redact(url: URL) -> str:
    """Render a URL for messages and logs, with the password as ``***``."""
    return url.render_as_string(hide_password=True)


def _split_host(entry: str, default_port: int | None) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` as (host, port)."""
    if entry.startswith("["):
        name, _, port = entry.partition("]:")
        name = name if port else name.rstrip("]")
        name += "]"
    elif entry.count(":") == 1:
        name, _, port = entry.partition(":")
    else:
        return entry, default_port
    if not port:
        return name, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("has a host query option whose port is not a number in 1-65535")
    return name, int(port)


def hosts(url: URL) -> list[tuple[str | None, int | None]]:
    """The servers a URL names, in order: its host and port, or each of its
    ``?host=h1:5433&host=h2:5434`` entries (SQLAlchemy's multi-host form, for
    failover with ``target_session_attrs=read-write``)."""
    listed = url.query.get("host")
    if listed is None:
        names = url.host.split(",") if url.host else [None]
        return [(name, url.port) for name in names]
    entries = (listed,) if isinstance(listed, str) else listed
    return [_split_host(entry, url.port) for entry in entries for entry in entry.split(",")]


def parse_database_url(value: Any) -> URL | None:
    """Parse a database URL into an async-driver `URL`.

    ``postgres://`` and ``postgresql://`` mean asyncpg; ``postgresql+psycopg://``
    means psycopg 3 in async mode. The SSL spelling is normalised to libpq's
    ``sslmode`` here; `plinth.db.engine` translates it for the chosen driver.
    """
    if value is None or isinstance(value, URL):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string such as postgresql+asyncpg://user:pass@host:5432/db")
    text = value.strip()
    if not text:
        return None
    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError(
            "is not a URL; expected postgresql+asyncpg://user:password@host:5432/dbname"
        ) from None
    except ValueError:  # int() of the port; its text is not repeated (it may be anything)
        if "," in text.rpartition("@")[2].partition("/")[0]:
            raise ValueError(
                "lists several host:port pairs in its authority, which SQLAlchemy cannot "
                "parse; write them as postgresql+asyncpg://user:password@/dbname"
                "?host=host1:5432&host=host2:5432&target_session_attrs=read-write"
            ) from None
        raise ValueError(
            "has a port that is not a number; expected postgresql+asyncpg://user:password@host:5432/dbname"
        ) from None
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"has port {url.port}; a port is 1-65535")
    hosts(url)  # each of several hosts' ports, too
    driver = DRIVERS.get(url.drivername)
    if driver is None:
        choices = ", ".join(f"{scheme}://" for scheme in DRIVERS)
        hint = " (a sync driver; use postgresql+psycopg://)" if "psycopg2" in url.drivername else ""
        raise ValueError(f"has scheme {url.drivername + '://'!r}{hint}; valid: {choices}")
    url = url.set(drivername=driver)
    query = dict(url.query)
    ssl = query.pop("ssl", None)
    if ssl is not None and "sslmode" not in query:
        # asyncpg's own spelling; `ssl=true` is the common JDBC-style variant.
        mode = {"true": "require", "1": "require", "false": "disable", "0": "disable"}.get(
            str(ssl).lower(), str(ssl)
        )
        query["sslmode"] = mode
    sslmode = query.get("sslmode")
    if sslmode is not None and sslmode not in SSL_MODES:
        raise ValueError(f"has sslmode={sslmode!r}; valid: {', '.join(SSL_MODES)}")
    return url.set(query=query)


def server_options(options: str) -> dict[str, str]:
    """libpq's ``options`` query value (``-c name=value ...``) as server settings."""
    settings: dict[str, str] = {}
    words = options.split()
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = words.pop(0)
        elif word.startswith(("-c", "--")):
            word = word[2:]
        else:
            raise ValueError("options must be -c name=value settings")
        name, equals, value = word.partition("=")
        if not name or not equals:
            raise ValueError("options must be -c name=value settings")
        settings[name.replace("-", "_")] = value
    return settings


def check_asyncpg_query(query: Mapping[str, str | tuple[str, ...]]) -> None:
    """Refuse what asyncpg would not take; the message names no value."""
    for key, value in query.items():
        if key not in ASYNCPG_QUERY_OPTIONS:
            raise ValueError(
                f"has query option {key!r}, which asyncpg does not take; accepted: "
                f"{', '.join(ASYNCPG_QUERY_OPTIONS)} "
                "(server settings go in options=-c name=value)"
            )
        if isinstance(value, tuple) and key != "host":
            raise ValueError(f"repeats query option {key!r}")
        if key in ASYNCPG_NUMBERS:
            try:
                ASYNCPG_NUMBERS[key](value)
            except (TypeError, ValueError):
                raise ValueError(f"has query option {key} that is not a number") from None
        if key == "options":
            server_options(str(value))


def _parse_engine_options(value: Any) -> Any:
    if not isinstance(value, str | bytes):
        return value
    try:
        return json.loads(value) if value.strip() else {}
    except ValueError as exc:
        message = getattr(exc, "msg", "invalid")
        column = getattr(exc, "colno", None)
        where = f" at column {column}" if column is not None else ""
        raise ValueError(
            f"is not JSON ({message}{where}); expected an object such as "
            '{"echo": true, "connect_args": {...}}'
        ) from None


def _asyncpg_connect_args() -> set[str] | None:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return None
    return {*inspect.signature(asyncpg.connect).parameters, *_SQLALCHEMY_ASYNCPG_ARGS}


DatabaseURL = Annotated[URL | None, BeforeValidator(parse_database_url)]
EngineOptions = Annotated[dict[str, Any], NoDecode, BeforeValidator(_parse_engine_options)]


def _parse_replica_urls(value: Any) -> Any:
    if isinstance(value, str):
        value = [part for part in (p.strip() for p in value.split(",")) if part]
    if not isinstance(value, list):
        return value
    urls = []
    for index, item in enumerate(value):
        try:
            urls.append(parse_database_url(item))
        except ValueError as exc:
            raise ValueError(f"has a URL (number {index + 1}) that {exc}") from None
    return [url for url in urls if url is not None]


ReplicaURLs = Annotated[list[URL], NoDecode, BeforeValidator(_parse_replica_urls)]


class DatabaseSettings(PlinthSettings):
    """How to reach PostgreSQL and how to pool connections.

    Every field is read from the environment (or `.env`); the pool fields use
    the ``DB_`` prefix, e.g. ``DB_POOL_SIZE=10``.
    """

    model_config = SettingsConfigDict(env_prefix="DB_", arbitrary_types_allowed=True)

    database_url: DatabaseURL = Field(default=None, validation_alias="DATABASE_URL")
    """``DATABASE_URL``. Unset outside production means: use the embedded PostgreSQL."""

    app_env: AppEnv = Field(default="development", validation_alias="APP_ENV")
    """``APP_ENV``: development, test or production. Production requires an SSL URL."""

    pool_size: int = Field(default=5, ge=1)
    """Connections kept open. 5 for development; see the README for sizing."""

    max_overflow: int = Field(default=10, ge=0)
    """Extra connections opened under load and closed when returned."""

    pool_timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for a free connection before failing."""

    pool_recycle: int = Field(default=1800, ge=-1)
    """Seconds after which a connection is replaced (proxies drop idle ones)."""

    pool_pre_ping: bool = False
    """Ping each connection on checkout. Off by default: it costs a round trip
    per request, and SQLAlchemy already invalidates the pool on a disconnect."""

    connect_timeout: float = Field(default=10.0, gt=0)
    """Seconds allowed for one connection attempt."""

    connect_retries: int = Field(default=3, ge=0)
    """Retries at start-up when the server cannot be reached."""

    retry_delay: float = Field(default=1.0, ge=0)
    """First retry delay in seconds; it doubles each time (1 s, 2 s, 4 s)."""

    statement_timeout: int | None = Field(default=None, ge=0)
    """Milliseconds after which the server cancels a statement (unset: no limit)."""

    application_name: str = "plinth"
    """Shown in ``pg_stat_activity``."""

    driver: Literal["asyncpg", "psycopg"] | None = None
    """``DB_DRIVER``: the async driver for every URL, the embedded server's too.
    Unset: the URL's scheme decides (``postgresql://`` means asyncpg)."""

    pooler: Literal["none", "pgbouncer-transaction", "pgbouncer-session"] = "none"
    """``DB_POOLER``: what sits between the app and PostgreSQL. With
    ``pgbouncer-transaction`` each transaction may run on another server
    connection, so no statement is prepared by name (asyncpg's caches off,
    psycopg's ``prepare_threshold=None``), no setting is sent at connect, and
    migrations, whose advisory lock lives in a session, need
    ``DATABASE_MIGRATION_URL``: a direct connection."""

    migration_url: DatabaseURL = Field(default=None, validation_alias="DATABASE_MIGRATION_URL")
    """``DATABASE_MIGRATION_URL``: where ``plinth db`` (and ``plinth serve``'s
    upgrade) connect instead of ``DATABASE_URL``: a direct connection past a
    pooler, or a role that may run DDL. Unset: ``DATABASE_URL``."""

    replica_urls: ReplicaURLs = Field(
        default_factory=list, validation_alias="DATABASE_REPLICA_URLS"
    )
    """``DATABASE_REPLICA_URLS``: comma-separated URLs of read replicas. A unit of
    work reads on one until it writes; then it stays on the primary."""

    replica_max_lag: float = Field(default=5.0, ge=0)
    """``DB_REPLICA_MAX_LAG``: seconds of replay lag past which a replica is skipped."""

    replica_check_interval: float = Field(default=1.0, gt=0)
    """``DB_REPLICA_CHECK_INTERVAL``: seconds between checks of the replicas' lag."""

    engine_options: EngineOptions = Field(default_factory=dict)
    """Rarely needed extra `create_async_engine` arguments, as a JSON object; its
    ``connect_args`` go to the driver's ``connect``. Unknown names are refused."""

    @model_validator(mode="after")
    def _production_needs_ssl(self) -> DatabaseSettings:
        if self.app_env != "production":
            return self
        if self.database_url is None:
            raise ValueError("DATABASE_URL is required when APP_ENV=production")
        if self.database_url.query.get("sslmode") not in ENCRYPTED_SSL_MODES:
            raise ValueError(
                "DATABASE_URL must use SSL when APP_ENV=production: "
                "add ?sslmode=require (or verify-full with sslrootcert=...)"
            )
        return self

    @model_validator(mode="after")
    def _pooler_takes_no_session_state(self) -> DatabaseSettings:
        if self.pooler != "pgbouncer-transaction":
            return self
        if self.statement_timeout is not None:
            raise ValueError(
                "DB_STATEMENT_TIMEOUT cannot be sent through PgBouncer in transaction mode "
                "(a connect-time setting it refuses or drops): set it on the role instead, "
                "ALTER ROLE app SET statement_timeout = '30s'"
            )
        if self.migration_url is not None and self.migration_url == self.database_url:
            raise ValueError(
                "DATABASE_MIGRATION_URL must not go through the pooler (it equals DATABASE_URL "
                "and DB_POOLER=pgbouncer-transaction): point it at PostgreSQL itself"
            )
        return self

    def migrations_url(self) -> URL | None:
        """The URL migrations run on: ``DATABASE_MIGRATION_URL``, else ``DATABASE_URL``.

        Raises `ConfigurationError` behind a transaction-mode pooler without a
        direct URL: a session-level advisory lock taken through it would not
        keep replicas from migrating at once.
        """
        if self.migration_url is not None:
            return self.migration_url
        if self.pooler == "pgbouncer-transaction" and self.database_url is not None:
            raise ConfigurationError(
                "migrations cannot run through PgBouncer in transaction mode "
                "(DB_POOLER=pgbouncer-transaction): their advisory lock belongs to one "
                "session; set DATABASE_MIGRATION_URL to a direct connection to PostgreSQL"
            )
        return self.database_url

    @model_validator(mode="after")
    def _driver_takes_the_arguments(self) -> DatabaseSettings:
        driver = f"postgresql+{self.driver}" if self.driver else "postgresql+asyncpg"
        if self.database_url is not None:
            url = self.with_driver(self.database_url)
            driver = url.drivername
            if driver == "postgresql+asyncpg":
                try:
                    check_asyncpg_query(url.query)
                except ValueError as exc:
                    raise ValueError(f"{self.variable('database_url')} {exc}") from None
        if self.engine_options:
            self._check_engine_options(driver)
        return self

    def _check_engine_options(self, driver: str) -> None:
        """Build (not connect) an engine with the options, so that an unknown
        argument fails here, in one line, rather than at the first connection."""
        from sqlalchemy.ext.asyncio import create_async_engine

        variable = self.variable("engine_options")
        options = dict(self.engine_options)
        connect_args = options.pop("connect_args", {})
        if not isinstance(connect_args, dict):
            raise ValueError(f"{variable} has connect_args that is not a JSON object")
        known = _asyncpg_connect_args() if driver == "postgresql+asyncpg" else None
        unknown = sorted(set(connect_args) - known) if known is not None else []
        if unknown:
            raise ValueError(
                f"{variable} has connect_args {', '.join(map(repr, unknown))}, which asyncpg's "
                f"connect does not take; accepted: {', '.join(sorted(known or ()))}"
            )
        try:
            create_async_engine(URL.create(driver), **options)
        except (TypeError, ArgumentError, ValueError) as exc:
            reason = str(exc).split(" sent to create_engine()")[0].strip().splitlines()[0]
            raise ValueError(
                f"{variable} is not accepted by create_async_engine: {reason} (see "
                "https://docs.sqlalchemy.org/en/20/core/engines.html#sqlalchemy.create_engine)"
            ) from None

    def with_driver(self, url: URL) -> URL:
        """`url` switched to `driver`, when one is set."""
        return url if self.driver is None else url.set(drivername=f"postgresql+{self.driver}")

    def redacted_url(self) -> str:
        """The URL in use (its driver too), for messages and logs, or
        ``'<embedded>'`` when unset."""
        if self.database_url is None:
            return "<embedded>"
        return redact(self.with_driver(self.database_url))
